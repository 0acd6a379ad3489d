// The room's member list: who is in it with which role (member.update), and the presence dot of
// each (presence frames, and GET …/presence/ after connecting).
import { avatar, el, insertSorted, roleBadge } from "./dom.js";
import { getJson } from "./api.js";
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

export class Members {
  #list;
  #count;
  #me;
  #presenceUrl;
  #onRestError;
  #presence = new Map(); // user id -> {status, last_seen_at}
  #touched = new Set(); // users whose presence changed while a REST load was running
  #load = 0;

  /**
   * list: the member <ul> (server-rendered rows carry data-user-id); count: the number beside
   * its title. presenceUrl: GET …/presence/. onRestError(error): a failed REST call.
   */
  constructor(list, count, { me, presenceUrl, onRestError }) {
    this.#list = list;
    this.#count = count;
    this.#me = me;
    this.#presenceUrl = presenceUrl;
    this.#onRestError = onRestError;
  }

  #row(userId) {
    return this.#list.querySelector(`[data-user-id="${CSS.escape(String(userId))}"]`);
  }

  #render(user, role) {
    const name = el("span", { class: "member-name" }, user.username);
    if (user.id === this.#me.id) name.append(" ", el("span", { class: "muted" }, "(you)"));
    const dot = el("span", { class: "presence-dot", role: "img" });
    paintPresence(dot, this.#presence.get(user.id));
    return el(
      "li",
      { class: "member", "data-user-id": user.id, "data-username": user.username },
      el("span", { class: "member-avatar" }, avatar(user, "avatar-sm"), dot),
      name,
      roleBadge(role),
    );
  }

  #recount() {
    this.#count.textContent = String(this.#list.children.length);
  }

  /** A member.update: someone joined, changed role, or (role null) left. */
  update({ user, role }) {
    const existing = this.#row(user.id);
    if (role === null) existing?.remove();
    else if (existing) existing.querySelector(".role-badge").replaceWith(roleBadge(role));
    else {
      insertSorted(this.#list, this.#render(user, role), (node) => node.dataset.username);
      if (!this.#presence.has(user.id)) this.loadPresence();
    }
    this.#recount();
  }

  remove(userId) {
    this.#row(userId)?.remove();
    this.#recount();
  }

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
