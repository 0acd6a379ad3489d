// The home page keeps "Your rooms" current without a reload: when someone adds you to a room
// (room.added), it appears here at once; leaving or being removed (room.removed) takes it away.
// Each room shows how many messages from others wait unread (unread.js), and messages that reach
// this page count as delivered to this device (receipts.js).
import { el, insertSorted, roleBadge, roomIcon } from "./dom.js";
import { getJson } from "./api.js";
import { LiveSocket } from "./live.js";
import { ReceiptSender } from "./receipts.js";
import { UnreadBadges } from "./unread.js";

const myRooms = document.getElementById("my-rooms");
const emptyNote = document.getElementById("my-rooms-empty");
const discover = document.getElementById("discover-rooms");

const unread = new UnreadBadges({ lists: [myRooms] });
let receipts = null;

const byRoomId = (list, id) => list?.querySelector(`[data-room-id="${CSS.escape(id)}"]`);
const nameOf = (row) => row.querySelector(".room-name").textContent;

/** Mirrors the row markup in templates/rooms/home.html. */
function renderRoomRow(room) {
  const text = el("span", { class: "room-text" }, el("span", { class: "room-name" }, room.name));
  if (room.topic) text.append(el("span", { class: "room-topic" }, room.topic));
  const href = `/rooms/${encodeURIComponent(room.id)}/`;
  const link = el("a", { class: "room-link", href }, roomIcon(room.kind), text);
  if (room.role) link.append(roleBadge(room.role));
  return el("li", { class: "room-row is-new", "data-room-id": room.id }, link);
}

function refreshEmptyNote() {
  emptyNote.hidden = myRooms.children.length > 0;
}

function addRoom(room) {
  const existing = byRoomId(myRooms, room.id);
  const row = renderRoomRow(room);
  if (existing) {
    row.classList.remove("is-new"); // a role change, not a new room: no highlight
    existing.replaceWith(row);
  } else {
    insertSorted(myRooms, row, nameOf);
  }
  byRoomId(discover, room.id)?.remove(); // joined: no longer something to discover
  unread.render(room.id);
  refreshEmptyNote();
}

function removeRoom(id) {
  byRoomId(myRooms, id)?.remove();
  receipts?.forget(id);
  refreshEmptyNote();
}

function updateRoom(room) {
  for (const row of [byRoomId(myRooms, room.id), byRoomId(discover, room.id)]) {
    if (!row) continue;
    row.querySelector(".room-name").textContent = room.name;
    const topic = row.querySelector(".room-topic");
    if (topic) topic.textContent = room.topic;
  }
}

/**
 * session.ready lists every room we belong to. Events published while the page was loading or
 * the socket was down are lost, so if the list on screen disagrees, re-read it over REST.
 */
async function reconcile(frame) {
  const onScreen = new Set([...myRooms.children].map((row) => row.dataset.roomId));
  const current = Object.keys(frame.rooms);
  if (current.length === onScreen.size && current.every((id) => onScreen.has(id))) return;
  const { results } = await getJson("/api/v1/rooms/"); // on failure the next reconnect tries again
  const ids = new Set(results.map((room) => room.id));
  for (const row of [...myRooms.children]) if (!ids.has(row.dataset.roomId)) removeRoom(row.dataset.roomId);
  for (const room of results) if (!onScreen.has(room.id)) addRoom(room);
}

const handlers = {
  "session.ready": (frame) => {
    reconcile(frame).catch((error) => console.warn("Parley:", error));
    receipts.onReady();
  },
  "message.new": (frame) => {
    // It reached this device: that is what "Delivered" means to the sender.
    if (frame.message.sender?.id !== unread.me) receipts.note(frame.room, { delivered: frame.sequence });
  },
  "room.added": (frame) => addRoom(frame.room),
  "room.removed": (frame) => removeRoom(frame.room),
  "room.update": (frame) => updateRoom(frame.room),
};

if (myRooms) {
  const socket = new LiveSocket({
    onFrame: (frame) => {
      unread.onFrame(frame);
      handlers[frame.type]?.(frame);
    },
  });
  receipts = new ReceiptSender(socket);
  socket.start();
}
