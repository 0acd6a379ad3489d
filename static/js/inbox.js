// The notification inbox and the room's notification level (docs/notifications.md).
//
// The inbox over REST is the truth: it is read when the page starts and again after every
// reconnect (session.ready), since the socket's `notification` frames are only hints (pub/sub is
// at-most-once). A frame bumps the badge, adds the item to an open list and, when the tab is
// hidden and the reader allowed it, shows a browser notification. Rooms whose level is "all" get a
// browser notification for every new message from someone else too (the inbox keeps only what is
// addressed to the reader). Permission is asked from the reader's click, never on load.
import { el } from "./dom.js";
import { getJson, sendJson } from "./api.js";

const INBOX_URL = "/api/v1/notifications/";
const LEVELS_URL = "/api/v1/notifications/rooms/";
const PAGE_SIZE = 20;

const WHAT = {
  mention: "mentioned you",
  room: "mentioned @room",
  reply: "replied in your thread",
  direct: "sent you a message",
};

/** Where an item leads: its room, at the message (chat.js scrolls to #message-<sequence>). */
export function itemHref(item) {
  const base = `/rooms/${encodeURIComponent(item.room.id)}/`;
  return item.message.sequence ? `${base}#message-${item.message.sequence}` : base;
}

/** One line saying what happened, e.g. "ana mentioned you in Team". */
export function itemTitle(item) {
  const who = item.actor ? item.actor.username : "Someone";
  return item.kind === "direct" ? `${who} ${WHAT.direct}` : `${who} ${WHAT[item.kind] || "wrote"} in ${item.room.name}`;
}

function browserNotificationsSupported() {
  return typeof window.Notification === "function";
}

export class Inbox {
  #me;
  #roomId;
  #button;
  #badge;
  #panel;
  #list;
  #more;
  #status;
  #permission;
  #level;
  #levels = new Map(); // room id -> level
  #items = new Map(); // id -> item
  #next = null;
  #unread = 0;
  #generation = 0; // a reload makes answers to earlier requests stale

  /**
   * root: the element holding the inbox's button and panel (room.html, #inbox). me: {id, username}.
   * roomId: the room this page shows (its level is the select's).
   */
  constructor(root, { me, roomId }) {
    this.#me = me;
    this.#roomId = roomId;
    this.#button = root.querySelector("#inbox-button");
    this.#badge = root.querySelector("#inbox-badge");
    this.#panel = root.querySelector("#inbox-panel");
    this.#list = root.querySelector("#inbox-list");
    this.#more = root.querySelector("#inbox-more");
    this.#status = root.querySelector("#inbox-status");
    this.#permission = root.querySelector("#inbox-permission");
    this.#level = document.getElementById("room-level");
    this.#button.addEventListener("click", () => this.toggle());
    root.querySelector("#inbox-close").addEventListener("click", () => this.close(true));
    root.querySelector("#inbox-read-all").addEventListener("click", () => this.#readAll());
    this.#more.addEventListener("click", () => this.#loadMore());
    this.#permission.querySelector("button").addEventListener("click", () => this.#askPermission());
    this.#list.addEventListener("click", (event) => this.#open(event));
    this.#panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.close(true);
      }
    });
    this.#level?.addEventListener("change", () => this.#setLevel(this.#level.value));
    // A click anywhere else closes the panel, as menus do.
    document.addEventListener("click", (event) => {
      if (!this.#panel.hidden && !root.contains(event.target)) this.close();
    });
    this.#showPermission();
  }

  get unread() {
    return this.#unread;
  }

  /** Frames from the page's session (chat.js), after the room list had them. */
  onFrame(frame) {
    switch (frame.type) {
      case "session.ready": // (re)connected: whatever the socket missed meanwhile is in REST
        this.reload();
        break;
      case "notification":
        this.#onNotification(frame);
        break;
      case "notification.read":
        this.#onRead(frame);
        break;
      case "notification.level":
        this.#applyLevel(frame.room, frame.level);
        break;
      case "message.new":
        this.#onMessage(frame);
        break;
      default:
    }
  }

  /** Read the first page, the unread count and the levels again from REST. */
  async reload() {
    const generation = ++this.#generation;
    try {
      const [page, levels] = await Promise.all([
        getJson(`${INBOX_URL}?limit=${PAGE_SIZE}`),
        getJson(LEVELS_URL),
      ]);
      if (generation !== this.#generation) return;
      this.#levels = new Map(levels.results.map((entry) => [entry.room, entry.level]));
      this.#applyLevel(this.#roomId, this.#levels.get(this.#roomId) || "mentions");
      this.#items.clear();
      this.#list.replaceChildren();
      this.#append(page);
      this.#setUnread(page.unread);
      this.#say(page.results.length ? "" : "Nothing yet: mentions, replies and direct messages land here.");
    } catch (error) {
      if (generation === this.#generation) this.#say("Couldn't load notifications.");
      console.warn("Parley: inbox", error);
    }
  }

  toggle() {
    if (this.#panel.hidden) this.open();
    else this.close(true);
  }

  open() {
    this.#panel.hidden = false;
    this.#button.setAttribute("aria-expanded", "true");
    this.#showPermission();
    (this.#list.querySelector("a") || this.#panel.querySelector("button"))?.focus();
  }

  close(refocus = false) {
    if (this.#panel.hidden) return;
    this.#panel.hidden = true;
    this.#button.setAttribute("aria-expanded", "false");
    if (refocus) this.#button.focus();
  }

  // -- the list ------------------------------------------------------------------------------------

  #append(page) {
    for (const item of page.results) {
      if (this.#items.has(item.id)) continue;
      this.#items.set(item.id, item);
      this.#list.append(this.#render(item));
    }
    this.#next = page.next;
    this.#more.hidden = !page.next;
  }

  #render(item) {
    const when = new Date(item.created_at);
    const excerpt = item.message.deleted ? "This message was deleted." : item.message.excerpt;
    return el(
      "li",
      { class: item.read ? "inbox-item" : "inbox-item is-unread", "data-notification-id": item.id },
      el(
        "a",
        { href: itemHref(item), class: "inbox-link", "data-kind": item.kind },
        el("span", { class: "inbox-title" }, itemTitle(item)),
        excerpt && el("span", { class: "inbox-excerpt" }, excerpt),
        el("time", { class: "inbox-time", dateTime: item.created_at }, when.toLocaleString()),
        !item.read && el("span", { class: "visually-hidden" }, " (unread)"),
      ),
    );
  }

  async #loadMore() {
    if (!this.#next) return;
    const generation = this.#generation;
    try {
      const page = await getJson(`${INBOX_URL}?limit=${PAGE_SIZE}&before=${encodeURIComponent(this.#next)}`);
      if (generation === this.#generation) this.#append(page);
    } catch (error) {
      this.#say("Couldn't load older notifications.");
    }
  }

  /** Following an item marks it read first (a new page would cancel the request). */
  async #open(event) {
    const link = event.target.closest("a.inbox-link");
    if (!link || event.button > 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const row = link.closest("[data-notification-id]");
    const item = this.#items.get(Number(row.dataset.notificationId));
    if (!item) return;
    event.preventDefault();
    if (!item.read) {
      try {
        const answer = await sendJson("POST", `${INBOX_URL}${item.id}/read/`);
        this.#markRead([item.id]);
        this.#setUnread(answer.unread);
      } catch (error) {
        console.warn("Parley: marking a notification read", error); // the link still goes
      }
    }
    this.close();
    location.assign(link.href);
  }

  async #readAll() {
    try {
      const answer = await sendJson("POST", `${INBOX_URL}read/`, {});
      this.#markRead([...this.#items.keys()]);
      this.#setUnread(answer.unread);
      this.#say("All caught up.");
    } catch (error) {
      this.#say("Couldn't mark them read; try again.");
    }
  }

  #markRead(ids) {
    for (const id of ids) {
      const item = this.#items.get(id);
      if (!item || item.read) continue;
      item.read = true;
      this.#list.querySelector(`[data-notification-id="${id}"]`)?.replaceWith(this.#render(item));
    }
  }

  #setUnread(count) {
    this.#unread = count;
    this.#badge.textContent = count > 99 ? "99+" : String(count);
    this.#badge.hidden = count === 0;
    this.#button.setAttribute("aria-label", count ? `Notifications, ${count} unread` : "Notifications");
  }

  #say(text) {
    this.#status.textContent = text;
  }

  // -- live ------------------------------------------------------------------------------------------

  #onNotification(frame) {
    const item = frame.notification;
    this.#setUnread(frame.unread);
    if (!this.#items.has(item.id)) {
      this.#items.set(item.id, item);
      this.#list.prepend(this.#render(item));
      this.#say("");
    }
    this.#notifyBrowser(itemTitle(item), item.message.excerpt, item.message.id, itemHref(item));
  }

  #onRead(frame) {
    this.#markRead(frame.ids === null ? [...this.#items.keys()] : frame.ids);
    this.#setUnread(frame.unread);
  }

  /** A room at level "all": every message from someone else, as a browser notification only. */
  #onMessage(frame) {
    const message = frame.message;
    if (this.#levels.get(frame.room) !== "all" || !message.sender || message.sender.id === this.#me.id) return;
    const room = { id: frame.room, name: "" };
    this.#notifyBrowser(
      `${message.sender.username} wrote`,
      message.e2ee ? "Encrypted message" : message.content.slice(0, 200), // no previews (docs/e2ee.md)
      message.id,
      itemHref({ room, message }),
    );
  }

  /** A system notification, only while this tab is hidden and only with the reader's permission.
   * Tagged by message: the same message never shows twice (an @mention in an "all" room). */
  #notifyBrowser(title, body, tag, href) {
    if (!browserNotificationsSupported() || Notification.permission !== "granted" || !document.hidden) return;
    try {
      const shown = new Notification(title, { body, tag });
      shown.onclick = () => {
        window.focus();
        location.assign(href);
        shown.close();
      };
    } catch (error) {
      console.warn("Parley: browser notification", error); // e.g. Android needs a service worker
    }
  }

  #showPermission() {
    const supported = browserNotificationsSupported();
    const state = supported ? Notification.permission : "unsupported";
    const button = this.#permission.querySelector("button");
    const note = this.#permission.querySelector(".inbox-permission-note");
    button.hidden = state !== "default";
    note.textContent =
      state === "denied"
        ? "Desktop notifications are blocked for this site in your browser's settings."
        : state === "granted"
          ? "Desktop notifications are on while Parley is in the background."
          : "";
    this.#permission.hidden = state === "unsupported";
  }

  async #askPermission() {
    if (!browserNotificationsSupported()) return;
    try {
      await Notification.requestPermission();
    } finally {
      this.#showPermission();
    }
  }

  // -- levels --------------------------------------------------------------------------------------

  #applyLevel(roomId, level) {
    this.#levels.set(roomId, level);
    if (roomId === this.#roomId && this.#level) this.#level.value = level;
  }

  async #setLevel(level) {
    const previous = this.#levels.get(this.#roomId) || "mentions";
    try {
      const answer = await sendJson("PUT", `${LEVELS_URL}${encodeURIComponent(this.#roomId)}/`, { level });
      this.#applyLevel(answer.room, answer.level);
    } catch (error) {
      this.#applyLevel(this.#roomId, previous);
      console.warn("Parley: notification level", error);
    }
  }
}
