// The room list shared by the room page's sidebar and the home page (sidebar.js).
import { RoomList, roomTitle, setPageTitle, sidebarRow } from "../sidebar.js";
import { assertEqual, test } from "./harness.js";

const room = (id, name, extra = {}) => ({
  id,
  name,
  topic: "",
  kind: "public",
  last_sequence: 0,
  role: "member",
  ...extra,
});

function sidebar(rooms, current = null) {
  const list = document.createElement("ul");
  const log = [];
  const roomList = new RoomList(list, {
    renderRow: sidebarRow,
    current,
    onAdded: (added) => log.push(`+${added.id}`),
    onRemoved: (id) => log.push(`-${id}`),
  });
  for (const data of rooms) roomList.add(data);
  log.length = 0;
  return { list, roomList, log };
}

const names = (list) => [...list.querySelectorAll("[data-room-name]")].map((node) => node.textContent);
const badge = (list, id) => list.querySelector(`[data-room-id="${id}"] [data-testid="unread"]`)?.textContent ?? null;

test("rooms are listed once each, by name; the open room's row stays", () => {
  const { list, roomList, log } = sidebar([room("b", "Berlin"), room("d", "Dublin")], "b");
  roomList.onFrame({ type: "room.added", room: room("c", "cairo") });
  roomList.onFrame({ type: "room.added", room: room("a", "Athens") });
  roomList.onFrame({ type: "room.added", room: room("c", "cairo", { role: "admin" }) }); // a role change
  assertEqual(names(list), ["Athens", "Berlin", "cairo", "Dublin"], "names in order, once each");
  roomList.onFrame({ type: "room.removed", room: "b" }); // the room open on this page
  roomList.onFrame({ type: "room.removed", room: "d" });
  assertEqual(roomList.ids(), ["a", "b", "c"], "rows left");
  assertEqual(log, ["+c", "+a", "+c", "-d"], "hooks called");
  assertEqual(list.querySelector('[data-room-id="b"] a').getAttribute("aria-current"), "page", "open room marked");
});

test("a rename shows in the list, in its place, with its topic and kind", () => {
  const { list, roomList } = sidebar([room("a", "Athens"), room("b", "Berlin")]);
  roomList.onFrame({ type: "room.update", room: room("a", "Alexandria") });
  assertEqual(names(list), ["Alexandria", "Berlin"], "names");
  roomList.onFrame({ type: "room.update", room: room("a", "Zagreb", { topic: "Trams", kind: "private" }) });
  assertEqual(names(list), ["Berlin", "Zagreb"], "moved to keep the order");
  const link = list.querySelector('[data-room-id="a"] a');
  assertEqual(link.title, "Trams", "the topic as its tooltip");
  assertEqual(link.querySelector(".room-icon").getAttribute("aria-label"), "Private room", "the kind's icon");
  roomList.onFrame({ type: "room.update", room: room("a", "Zagreb") });
  assertEqual([link.hasAttribute("title"), link.querySelectorAll(".room-icon").length], [false, 1], "cleared");
});

test("unread badges count others' messages, never the open room's, and clear when read", () => {
  const { list, roomList } = sidebar([room("a", "Athens"), room("b", "Berlin")], "b");
  roomList.onFrame({ type: "session.ready", user: 1, rooms: { a: 7, b: 9 }, unread: { a: 2, b: 4 } });
  assertEqual([badge(list, "a"), badge(list, "b")], ["2", null], "from session.ready");
  const from = (user) => ({ id: user, username: `user${user}` });
  roomList.onFrame({ type: "message.new", room: "a", sequence: 8, message: { sender: from(2) } });
  roomList.onFrame({ type: "message.new", room: "a", sequence: 9, message: { sender: from(1) } }); // mine
  roomList.onFrame({ type: "message.new", room: "b", sequence: 10, message: { sender: from(2) } });
  assertEqual([badge(list, "a"), badge(list, "b")], ["3", null], "after new messages");
  // My other tab read room a up to its latest number.
  roomList.onFrame({ type: "receipt", room: "a", user: from(1), delivered_sequence: 9, read_sequence: 9 });
  assertEqual(badge(list, "a"), null, "after reading");
});

test("the tab title counts unread messages in my other rooms", () => {
  const { roomList } = sidebar([room("a", "Athens"), room("b", "Berlin")], "b");
  setPageTitle("Berlin · Parley");
  roomList.onFrame({ type: "session.ready", user: 1, rooms: { a: 3, b: 3 }, unread: { a: 2, b: 5 } });
  assertEqual(document.title, "(2) Berlin · Parley", "two unread elsewhere; the open room never counts");
  setPageTitle("Bonn · Parley"); // renamed
  assertEqual(document.title, "(2) Bonn · Parley", "after a rename");
  roomList.onFrame({ type: "receipt", room: "a", user: { id: 1 }, delivered_sequence: 3, read_sequence: 3 });
  assertEqual(document.title, "Bonn · Parley", "all read");
});

test("a direct room is titled by the other person", () => {
  const me = { id: 1, username: "ada" };
  assertEqual(roomTitle(room("d", "ada, bob", { kind: "direct" }), me), "bob", "the other person");
  assertEqual(roomTitle(room("e", "bob, ada", { kind: "direct" }), me), "bob", "whoever opened it");
  assertEqual(roomTitle(room("p", "ada, bob"), me), "ada, bob", "other rooms keep their names");
  const row = sidebarRow(room("d", "ada, bob", { kind: "direct" }), { me });
  assertEqual(row.querySelector("[data-room-name]").textContent, "bob", "in the sidebar");
});

test("a list of one workspace's rooms leaves out rooms of another workspace", () => {
  const { list, roomList } = sidebar([room("a", "Athens", { workspace: 1 })]);
  list.dataset.workspaceId = "1";
  roomList.onFrame({ type: "room.added", room: room("b", "Berlin", { workspace: 2 }) });
  roomList.onFrame({ type: "room.added", room: room("c", "Cairo", { workspace: 1 }) });
  assertEqual(names(list), ["Athens", "Cairo"], "only workspace 1's rooms");
});

test("leaving the list's workspace sends the page home; another workspace's leaving does not", () => {
  const list = document.createElement("ul");
  list.dataset.workspaceId = "7";
  const left = [];
  const roomList = new RoomList(list, { renderRow: sidebarRow, onWorkspaceLeft: () => left.push("home") });
  roomList.onFrame({ type: "workspace.left", workspace: 8, reason: "removed" });
  assertEqual(left, [], "another workspace");
  roomList.onFrame({ type: "workspace.left", workspace: 7, reason: "deleted" });
  assertEqual(left, ["home"], "this list's workspace");
});
