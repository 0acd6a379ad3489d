// What every signed-in page with a socket shares: the list of the reader's rooms kept current
// without a reload (the room page's sidebar, the home page's "Your rooms"), with unread badges
// (unread.js), and the live session behind it (one LiveSocket and its ReceiptSender).
//
// Someone adds you to a room (room.added): it appears at once; leaving or being removed
// (room.removed) takes it away; a rename (room.update) shows. Events published while the page
// was loading or the socket was down are lost, so session.ready's list of rooms is the truth the
// list is brought in line with. Messages that reach the page count as delivered to this device.
import { el, insertSorted, roomIcon } from "./dom.js";
import { getJson } from "./api.js";
import { LiveSocket } from "./live.js";
import { ReceiptSender } from "./receipts.js";
import { UnreadBadges } from "./unread.js";

export const roomHref = (id) => `/rooms/${encodeURIComponent(id)}/`;

/**
 * How a room is titled for the reader: a direct room by the other person. Its stored name is
 * "<username>, <username>" (rooms.services.direct_room_get_or_create; usernames hold no ", "),
 * which is what the server-rendered rows show too (rooms.selectors.room_summaries).
 */
export function roomTitle(room, me) {
  if (room.kind !== "direct" || !me) return room.name;
  return room.name.split(", ").find((name) => name !== me.username) ?? room.name;
}

// The tab title: "(3) Design · Parley" while 3 messages in my other rooms are unread.
let titleBase = document.title;
let titleUnread = 0;

function paintTitle() {
  document.title = titleUnread ? `(${titleUnread > 99 ? "99+" : titleUnread}) ${titleBase}` : titleBase;
  const badge = document.getElementById("drawer-unread"); // the phone's room-list button
  if (badge) {
    badge.hidden = !titleUnread;
    badge.textContent = titleUnread > 99 ? "99+" : String(titleUnread);
    badge.setAttribute("aria-label", `${titleUnread} unread`);
  }
}

/** The page's own title (a room renamed); the unread count stays in front of it. */
export function setPageTitle(base) {
  titleBase = base;
  paintTitle();
}

const byRoomId = (list, id) => list?.querySelector(`[data-room-id="${CSS.escape(id)}"]`);
const nameOf = (row) => row.querySelector("[data-room-name]")?.textContent ?? "";

/**
 * Write a room's new name, topic and kind (room.update) into a row of any room list (rows mark
 * them data-room-*): the name; the topic in its own element where the row shows one (the home
 * page's lists, which then drop a same-name hint), else in the link's tooltip (the sidebar); the
 * kind's icon.
 */
export function renameRow(row, room) {
  if (!row) return;
  const name = row.querySelector("[data-room-name]");
  if (name) name.textContent = room.name;
  let topic = row.querySelector("[data-room-topic]");
  const text = name?.closest(".room-text");
  if (!topic && room.topic && text) {
    text.querySelector(".room-topic")?.remove(); // a hint telling rooms of one name apart
    topic = el("span", { class: "room-topic", "data-room-topic": true });
    text.append(topic);
  }
  if (topic) {
    topic.textContent = room.topic || "";
    topic.hidden = !room.topic;
  }
  const link = row.querySelector("a.sidebar-room");
  if (link && room.topic) link.title = room.topic;
  else link?.removeAttribute("title");
  row.querySelector(".room-icon")?.replaceWith(roomIcon(room.kind));
}

/** A row of the room page's sidebar; mirrors templates/rooms/room.html. */
export function sidebarRow(room, { current = false, me = null } = {}) {
  const link = el(
    "a",
    {
      class: current ? "sidebar-room is-active" : "sidebar-room",
      href: roomHref(room.id),
      "aria-current": current && "page",
    },
    roomIcon(room.kind),
    el("span", { class: "sidebar-room-name", "data-room-name": true }, roomTitle(room, me)),
  );
  if (room.topic) link.title = room.topic;
  return el("li", { "data-room-id": room.id }, link);
}

export class RoomList {
  #list;
  #renderRow;
  #current;
  #onAdded;
  #onRemoved;
  #onWorkspaceLeft;

  /**
   * list: a <ul> whose rows carry data-room-id (and the name in [data-room-name]), sorted by name.
   * renderRow(room, {current, isNew}): a row for a room payload (docs/protocol.md).
   * current: the room open on this page, if any: its row stays even once we leave it (the
   *   page says so itself), and it never shows an unread count.
   * onAdded(room) / onRemoved(id): after a row came or went.
   * onWorkspaceLeft(): the list's workspace (data-workspace-id) is no longer mine; by default the
   *   page goes home.
   */
  constructor(
    list,
    { renderRow, current = null, onAdded = () => {}, onRemoved = () => {}, onWorkspaceLeft = () => location.assign("/") },
  ) {
    this.#list = list;
    this.#renderRow = renderRow;
    this.#current = current;
    this.#onAdded = onAdded;
    this.#onRemoved = onRemoved;
    this.#onWorkspaceLeft = onWorkspaceLeft;
    this.unread = new UnreadBadges({
      lists: [list],
      currentRoom: current,
      onChange: (total) => {
        titleUnread = total;
        paintTitle();
      },
    });
  }

  has(id) {
    return Boolean(byRoomId(this.#list, id));
  }

  ids() {
    return this.#list ? [...this.#list.children].map((row) => row.dataset.roomId) : [];
  }

  /** A room we are in: a new row, or a fresh one if it is listed already (our role changed).
   * The list shows one workspace's rooms (its data-workspace-id): another's are not added. */
  add(room) {
    if (!this.#list) return;
    const workspace = this.#list.dataset.workspaceId;
    if (workspace && room.workspace != null && String(room.workspace) !== workspace) return;
    const existing = byRoomId(this.#list, room.id);
    const row = this.#renderRow(room, { current: room.id === this.#current, isNew: !existing });
    if (existing) existing.replaceWith(row);
    else insertSorted(this.#list, row, nameOf);
    this.unread.render(room.id);
    this.#onAdded(room);
  }

  remove(id) {
    if (!this.#list || id === this.#current) return;
    byRoomId(this.#list, id)?.remove();
    this.#onRemoved(id);
  }

  /** A room renamed (or its topic or kind changed): its row redrawn, and moved to keep the order. */
  rename(room) {
    const row = byRoomId(this.#list, room.id);
    if (!row) return;
    renameRow(row, room);
    insertSorted(this.#list, row, nameOf);
  }

  /** session.ready lists every room we belong to (id -> latest number): make the list agree. */
  async reconcile(rooms) {
    if (!this.#list) return;
    for (const id of this.ids()) if (!(id in rooms)) this.remove(id);
    if (Object.keys(rooms).every((id) => this.has(id))) return;
    // The names of the new rooms. On failure the next reconnect tries again.
    const { results } = await getJson("/api/v1/rooms/");
    for (const room of results) if (!this.has(room.id)) this.add(room);
  }

  onFrame(frame) {
    this.unread.onFrame(frame);
    switch (frame.type) {
      case "session.ready":
        this.reconcile(frame.rooms).catch((error) => console.warn("Parley:", error));
        break;
      case "room.added":
        this.add(frame.room);
        break;
      case "room.removed":
        this.remove(frame.room);
        break;
      case "room.update":
        this.rename(frame.room);
        break;
      case "workspace.left":
        // Removed from, left, or deleted: the workspace this list shows is not mine any more (its
        // rooms went with room.removed). The home page then shows my next one, or the page to
        // create one (docs/workspaces.md "Live effects").
        if (this.#list && String(frame.workspace) === this.#list.dataset.workspaceId) this.#onWorkspaceLeft();
        break;
      default:
    }
  }
}

/**
 * The page's live session: one LiveSocket and its ReceiptSender. Every frame first keeps the room
 * list current, then goes to the page's `onFrame`. Call start() once the page is ready for frames.
 */
export class Session {
  #rooms;
  #current;
  #onFrame;
  #me = null;

  /** rooms: the page's RoomList. current: the room open on this page. onState(state, transport): see live.js. */
  constructor({ rooms, current = null, onFrame = () => {}, onState = () => {} }) {
    this.#rooms = rooms;
    this.#current = current;
    this.#onFrame = onFrame;
    // Chat works over SSE or long-polling too (live.js), when a proxy blocks the socket.
    this.socket = new LiveSocket({ onFrame: (frame) => this.#handle(frame), onState, fallback: true });
    this.receipts = new ReceiptSender(this.socket);
  }

  start() {
    this.socket.start();
  }

  /** Send a frame; false if the socket is not ready (the caller keeps it for later). */
  send(frame) {
    return this.socket.send(frame);
  }

  /** The boards open on the page (the split view's): an SSE stream or a poll follows them too. */
  setBoards(boards) {
    this.socket.setBoards(boards);
  }

  #handle(frame) {
    this.#rooms.onFrame(frame);
    switch (frame.type) {
      case "session.ready":
        this.#me = frame.user;
        this.receipts.retain(frame.rooms); // rooms left while the socket was down
        this.receipts.onReady();
        break;
      case "message.new":
        // It reached this device: that is what "Delivered" means to the sender. (The open room
        // tells the batcher itself, with what the reader has seen.)
        if (frame.room !== this.#current && frame.message.sender?.id !== this.#me) {
          this.receipts.note(frame.room, { delivered: frame.sequence });
        }
        break;
      case "room.removed":
        this.receipts.forget(frame.room); // the server would refuse its receipts
        break;
      default:
    }
    this.#onFrame(frame);
  }
}
