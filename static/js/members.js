// The room's member list: who is in it with which role (member.update), the presence dot of
// each (presence frames, and GET …/presence/ after connecting), and the menu a member's name opens:
// message them, change their role, make them owner, remove them, as the reader's role allows
// (rooms/services.py decides; the menu only leaves out what the server would refuse).
import { avatar, el, insertSorted, ROLE_LABELS, roleBadge } from "./dom.js";
import { getJson, sendJson } from "./api.js";
import { hhmm, isToday } from "./format.js";

function presenceLabel(info) {
  if (!info) return "Status unknown";
  if (info.status === "online") return "Online";
  if (info.status === "away") return "Away";
  if (!info.last_seen_at) return "Offline";
  const seen = new Date(info.last_seen_at);
  const when = isToday(seen)
    ? hhmm(seen)
    : `${seen.toLocaleDateString(undefined, { day: "numeric", month: "short" })} ${hhmm(seen)}`;
  return `Offline — last seen ${when}`;
}

function paintPresence(dot, info) {
  const label = presenceLabel(info);
  dot.dataset.status = info ? info.status : "unknown";
  dot.title = label;
  dot.setAttribute("aria-label", label);
}

const ROLES = ["owner", "admin", "member", "viewer"];

export class Members {
  #list;
  #count;
  #me;
  #presenceUrl;
  #onRestError;
  #direct;
  #menu = null; // the open member menu: {row, node}
  #presence = new Map(); // user id -> {status, last_seen_at}
  #touched = new Set(); // users whose presence changed while a REST load was running
  #load = 0;

  /**
   * list: the member <ul> (server-rendered rows carry data-user-id, data-username, data-role);
   * count: the number beside its title. presenceUrl: GET …/presence/. onRestError(error): a failed
   * REST call. The member menu: roomUrl(suffix) for REST, myRole() and ability(role) (client-config
   * roles: manage, rank), confirm({title, text, ok}) -> Promise<boolean>, message(username) opens
   * the direct conversation, leave() asks to leave, status: where outcomes are said.
   */
  constructor(
    list,
    count,
    { me, presenceUrl, onRestError, roomUrl, myRole, ability, confirm, message, leave, status, removed = () => false },
  ) {
    this.#list = list;
    this.#count = count;
    this.#me = me;
    this.#presenceUrl = presenceUrl;
    this.#onRestError = onRestError;
    this.#direct = list.hasAttribute("data-direct");
    this.actions = { roomUrl, myRole, ability, confirm, message, leave, status, removed };
    list.addEventListener("click", (event) => {
      const name = event.target.closest("[data-member-menu]");
      if (name) this.toggleMenu(name.closest(".member"));
    });
    document.addEventListener("click", (event) => {
      if (this.#menu && !this.#menu.row.contains(event.target)) this.closeMenu();
    });
    list.addEventListener("keydown", (event) => this.#onMenuKey(event));
  }

  #row(userId) {
    return this.#list.querySelector(`[data-user-id="${CSS.escape(String(userId))}"]`);
  }

  #render(user, role) {
    const name = el(
      "button",
      { type: "button", class: "member-name", "data-member-menu": true, "aria-haspopup": "menu", "aria-expanded": "false" },
      user.display_name || user.username,
    );
    if (user.id === this.#me.id) name.append(" ", el("span", { class: "muted" }, "(you)"));
    const dot = el("span", { class: "presence-dot", role: "img" });
    paintPresence(dot, this.#presence.get(user.id));
    return el(
      "li",
      {
        class: "member",
        "data-user-id": user.id,
        "data-username": user.username,
        "data-display-name": user.display_name || user.username,
        "data-role": role,
      },
      el("span", { class: "member-avatar" }, avatar(user, "avatar-sm"), dot),
      name,
      !this.#direct && roleBadge(role),
    );
  }

  #recount() {
    this.#count.textContent = String(this.#list.children.length);
  }

  /** A member's display name as the list shows it (their username when they set none); null for
   * someone not in the room (any more). */
  displayName(userId) {
    return this.#row(userId)?.dataset.displayName || null;
  }

  /** Members as the list shows them now: [{id, username, role}]. */
  all() {
    return [...this.#list.children].map((row) => ({
      id: Number(row.dataset.userId),
      username: row.dataset.username,
      role: row.dataset.role,
    }));
  }

  /** A member.update: someone joined, changed role, or (role null) left. */
  update({ user, role }) {
    const existing = this.#row(user.id);
    if (this.#menu?.row === existing) this.closeMenu();
    if (role === null) existing?.remove();
    else if (existing) {
      existing.dataset.role = role;
      existing.querySelector(".role-badge")?.replaceWith(roleBadge(role));
    } else {
      insertSorted(this.#list, this.#render(user, role), (node) => node.dataset.username);
      if (!this.#presence.has(user.id)) this.loadPresence();
    }
    this.#recount();
  }

  remove(userId) {
    this.#row(userId)?.remove();
    this.#recount();
  }

  /** A user.profile: a member's new name or picture, drawn in their row (which the reaction
   * tooltips read their name from: displayName). */
  onProfile(user) {
    const existing = this.#row(user.id);
    if (!existing) return;
    if (this.#menu?.row === existing) this.closeMenu();
    existing.replaceWith(this.#render(user, existing.dataset.role));
  }

  // The member menu -------------------------------------------------------------------------

  /** What the reader may do to this member now (mirrors rooms/services.py; the server decides). */
  #choices(target) {
    const { myRole, ability, removed } = this.actions;
    if (removed()) return [];
    const mine = myRole();
    const self = target.id === this.#me.id;
    if (self) return this.#direct ? [] : [{ action: "leave", label: "Leave room…" }];
    const choices = this.#direct ? [] : [{ action: "message", label: `Message ${target.username}` }];
    const outranks = mine === "owner" || ability(target.role, "rank") < ability(mine, "rank");
    if (this.#direct || !ability(mine, "manage") || !outranks) return choices;
    for (const role of ROLES) {
      if (role === "owner" || (mine !== "owner" && ability(role, "rank") >= ability(mine, "rank"))) continue;
      choices.push({ action: "role", role, label: `Make ${ROLE_LABELS[role].toLowerCase()}`, current: role === target.role });
    }
    if (mine === "owner" && target.role !== "owner") choices.push({ action: "owner", label: "Make owner…" });
    choices.push({ action: "remove", label: "Remove from room…", danger: true });
    return choices;
  }

  toggleMenu(row) {
    const same = this.#menu?.row === row;
    this.closeMenu();
    if (same || !row) return;
    const target = { id: Number(row.dataset.userId), username: row.dataset.username, role: row.dataset.role };
    const choices = this.#choices(target);
    if (!choices.length) return;
    const node = el(
      "div",
      { class: "menu member-menu", role: "menu", "aria-label": `Actions for ${target.username}` },
      ...choices.map((choice) =>
        el(
          "button",
          {
            type: "button",
            class: `menu-item${choice.danger ? " is-danger" : ""}`,
            role: choice.current === undefined ? "menuitem" : "menuitemradio",
            "aria-checked": choice.current === undefined ? null : String(choice.current),
            disabled: Boolean(choice.current),
            onclick: () => this.#run(choice, target),
          },
          choice.label,
        ),
      ),
    );
    row.append(node);
    row.querySelector("[data-member-menu]").setAttribute("aria-expanded", "true");
    this.#menu = { row, node };
    node.querySelector("button:not(:disabled)")?.focus();
  }

  closeMenu({ focus = false } = {}) {
    if (!this.#menu) return;
    const { row, node } = this.#menu;
    this.#menu = null;
    node.remove();
    const name = row.querySelector("[data-member-menu]");
    name?.setAttribute("aria-expanded", "false");
    if (focus) name?.focus();
  }

  #onMenuKey(event) {
    if (!this.#menu) return;
    if (event.key === "Escape") {
      event.stopPropagation();
      this.closeMenu({ focus: true });
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const items = [...this.#menu.node.querySelectorAll("button:not(:disabled)")];
    const at = items.indexOf(document.activeElement);
    const next = (at + (event.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
    items[next]?.focus();
    event.preventDefault();
  }

  async #run(choice, target) {
    this.closeMenu();
    const { roomUrl, confirm, message, leave, status } = this.actions;
    const member = roomUrl(`members/${encodeURIComponent(target.id)}/`);
    const say = (text, kind = "") => {
      status.textContent = text;
      status.dataset.kind = kind;
    };
    try {
      if (choice.action === "message") message(target.username);
      else if (choice.action === "leave") leave();
      else if (choice.action === "role") {
        this.update(await sendJson("PATCH", member, { role: choice.role }));
        say(`${target.username} is now ${ROLE_LABELS[choice.role].toLowerCase()}.`, "ok");
      } else if (choice.action === "owner") {
        const ok = await confirm({
          title: `Make ${target.username} the owner?`,
          text: `${target.username} will own this room and can delete it; you'll become an admin.`,
          ok: "Make owner",
        });
        if (!ok) return;
        this.update(await sendJson("POST", roomUrl("owner/"), { user: target.id }));
        say(`${target.username} now owns this room.`, "ok");
      } else if (choice.action === "remove") {
        const ok = await confirm({
          title: `Remove ${target.username}?`,
          text: `${target.username} will no longer see this room.`,
          ok: "Remove",
        });
        if (!ok) return;
        await sendJson("DELETE", member);
        this.update({ user: target, role: null });
        say(`${target.username} was removed.`, "ok");
      }
    } catch (error) {
      // Refusals (403 forbidden, 409 last_owner, …) are said here: they do not mean we were removed.
      if (error.status === 401) this.#onRestError(error);
      else say(error.message || "That didn't work. Please try again.", "error");
    }
  }

  // Presence --------------------------------------------------------------------------------

  onPresence(frame) {
    this.#touched.add(frame.user.id);
    this.#setPresence(frame.user.id, { status: frame.status, last_seen_at: frame.last_seen_at });
  }

  /** Everyone's state now; frames that arrive while this runs are newer and win. */
  async loadPresence() {
    const load = ++this.#load;
    this.#touched.clear();
    try {
      const { results } = await getJson(this.#presenceUrl);
      if (load !== this.#load) return; // a newer load is on its way
      for (const item of results) {
        if (!this.#touched.has(item.user.id)) this.#setPresence(item.user.id, item);
      }
    } catch (error) {
      this.#onRestError(error);
    }
  }

  #setPresence(userId, info) {
    this.#presence.set(userId, info);
    const dot = this.#row(userId)?.querySelector(".presence-dot");
    if (dot) paintPresence(dot, info);
  }
}
