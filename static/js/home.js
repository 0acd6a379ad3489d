// The home page: "Your rooms" stays current without a reload (sidebar.js: rooms come and go,
// unread counts, delivery receipts), and a room you join leaves "Discover public rooms".
import { el, readJsonScript, roleBadge, roomIcon } from "./dom.js";
import { renameRow, RoomList, roomHref, roomTitle, Session } from "./sidebar.js";

const me = readJsonScript("me-data");

const myRooms = document.getElementById("my-rooms");
const emptyNote = document.getElementById("my-rooms-empty");
const discover = document.getElementById("discover-rooms");

/** Mirrors the row markup in templates/rooms/home.html. */
function renderRoomRow(room, { isNew }) {
  const text = el(
    "span",
    { class: "room-text" },
    el("span", { class: "room-name", "data-room-name": true }, roomTitle(room, me)),
    room.topic ? el("span", { class: "room-topic", "data-room-topic": true }, room.topic) : null,
  );
  const link = el("a", { class: "room-link", href: roomHref(room.id) }, roomIcon(room.kind), text);
  if (room.role && room.kind !== "direct") link.append(roleBadge(room.role)); // a direct room has no roles to show
  // A new room is highlighted for a moment; a role change re-draws the row without that.
  return el("li", { class: isNew ? "room-row is-new" : "room-row", "data-room-id": room.id }, link);
}

function refreshEmptyNote() {
  emptyNote.hidden = myRooms.children.length > 0;
}

const discoverRow = (id) => discover?.querySelector(`[data-room-id="${CSS.escape(id)}"]`);

if (myRooms) {
  const rooms = new RoomList(myRooms, {
    renderRow: renderRoomRow,
    onAdded: (room) => {
      discoverRow(room.id)?.remove(); // joined: no longer something to discover
      refreshEmptyNote();
    },
    onRemoved: refreshEmptyNote,
  });
  const session = new Session({
    rooms,
    onFrame: (frame) => {
      if (frame.type === "room.update") renameRow(discoverRow(frame.room.id), frame.room);
    },
  });
  session.start();
}
