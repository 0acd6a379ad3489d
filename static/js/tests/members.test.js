// The member menu (members.js): what it offers depends on the reader's role and the member's, as
// rooms/services.py decides (owners change anyone; admins only those below them).
import { Members } from "../members.js";
import { MessageRows } from "../message-view.js";
import { reactionChips } from "../reactions.js";
import { assertEqual, test } from "./harness.js";

// As client-config's roles (rooms.access.role_abilities).
const ABILITIES = {
  owner: { manage: true, rank: 3 },
  admin: { manage: true, rank: 2 },
  member: { manage: false, rank: 1 },
  viewer: { manage: false, rank: 0 },
};

/** Rows as templates/rooms/room.html renders them (adding rows here would load presence). */
function memberList(myRole, people, { direct = false } = {}) {
  const list = document.createElement("ul");
  if (direct) list.setAttribute("data-direct", "");
  people.forEach(([username, role], index) => {
    const row = document.createElement("li");
    Object.assign(row.dataset, { userId: String(index + 1), username, displayName: username.toUpperCase(), role });
    const name = document.createElement("button");
    name.dataset.memberMenu = "";
    name.textContent = username;
    row.append(name);
    list.append(row);
  });
  document.body.append(list);
  const members = new Members(list, document.createElement("span"), {
    me: { id: 1, username: "me" },
    presenceUrl: "/no-presence-here/",
    onRestError: () => true,
    roomUrl: (suffix) => `/rooms/x/${suffix}`,
    myRole: () => myRole,
    ability: (role, ability) => ABILITIES[role][ability],
    status: document.createElement("p"),
  });
  const menu = (username) => {
    const row = list.querySelector(`[data-username="${username}"]`);
    members.toggleMenu(row);
    const items = [...row.querySelectorAll(".menu-item")].map((item) => item.textContent + (item.disabled ? " (now)" : ""));
    members.closeMenu();
    return items;
  };
  return { list, members, menu };
}

const PEOPLE = [
  ["me", "admin"],
  ["olga", "owner"],
  ["ann", "admin"],
  ["mo", "member"],
  ["vi", "viewer"],
];

test("an admin changes members and viewers, not owners or other admins", () => {
  const { list, menu } = memberList("admin", PEOPLE);
  assertEqual(menu("mo"), ["Message mo", "Make member (now)", "Make viewer", "Remove from room…"], "a member");
  assertEqual(menu("vi"), ["Message vi", "Make member", "Make viewer (now)", "Remove from room…"], "a viewer");
  assertEqual(menu("ann"), ["Message ann"], "another admin");
  assertEqual(menu("olga"), ["Message olga"], "the owner");
  assertEqual(menu("me"), ["Leave room…"], "myself");
  list.remove();
});

test("an owner changes anyone and can hand the room over", () => {
  const { list, members, menu } = memberList("owner", [["me", "owner"], ["ann", "admin"]]);
  assertEqual(
    menu("ann"),
    ["Message ann", "Make admin (now)", "Make member", "Make viewer", "Make owner…", "Remove from room…"],
    "an admin",
  );
  members.update({ user: { id: 2, username: "ann" }, role: "owner" }); // a member.update: no badge to swap here
  assertEqual(menu("ann"), ["Message ann", "Make admin", "Make member", "Make viewer", "Remove from room…"], "now an owner");
  assertEqual(members.all(), [{ id: 1, username: "me", role: "owner" }, { id: 2, username: "ann", role: "owner" }], "all()");
  list.remove();
});

test("members only message others; a direct room's menu has nothing to offer", () => {
  const { list, menu } = memberList("member", PEOPLE);
  assertEqual(menu("ann"), ["Message ann"], "a member's menu");
  list.remove();
  const direct = memberList("member", [["me", "member"], ["bo", "member"]], { direct: true });
  assertEqual([direct.menu("bo"), direct.menu("me")], [[], []], "direct room");
  direct.list.remove();
});

test("reactions name people by the member list's display names, else by username", () => {
  const { list, members } = memberList("member", PEOPLE);
  const nameOf = (user) => members.displayName(user.id) || user.username;
  const users = [
    { id: 1, username: "me" },
    { id: 2, username: "olga" },
    { id: 9, username: "gone" }, // left the room: no display name known
  ];
  const message = { id: "m", reactions: [{ emoji: "🎉", count: 3, users }] };
  const chip = reactionChips(message, { id: 1, username: "me" }, true, nameOf).querySelector(".reaction-chip");
  assertEqual(chip.title, "you, OLGA, gone reacted with 🎉", "tooltip");
  assertEqual(chip.getAttribute("aria-label"), "🎉 3: you, OLGA, gone", "label");
  const plain = reactionChips(message, { id: 1, username: "me" }, true).querySelector(".reaction-chip");
  assertEqual(plain.title, "you, olga, gone reacted with 🎉", "without a list: usernames");
  list.remove();
});

test("a new display name (user.profile) is redrawn in the member list and the rows naming them", () => {
  const { list, members } = memberList("member", PEOPLE);
  const nameOf = (user) => members.displayName(user.id) || user.username;
  const shown = document.createElement("ul");
  document.body.append(shown);
  const rows = new MessageRows(shown, { me: { id: 1, username: "me" }, nameOf });
  const olga = { id: 2, username: "olga", display_name: "Olga", avatar_url: null };
  const at = "2026-01-01T10:00:00Z";
  const sent = { id: "a", sequence: 1, created_at: at, content: "hi", sender: olga, reactions: [] };
  const reacted = {
    id: "b", sequence: 2, created_at: at, content: "yo", sender: { id: 1, username: "me" },
    reactions: [{ emoji: "🎉", count: 1, users: [{ id: 2, username: "olga" }] }],
  };
  const other = { id: "c", sequence: 3, created_at: at, content: "x", sender: { id: 3, username: "ann" }, reactions: [] };
  for (const message of [sent, reacted, other]) rows.insert(message, null);
  const untouched = rows.node("c");

  const renamed = { ...olga, display_name: "Olga K." };
  members.onProfile(renamed); // first, as chat.js does: the chips read names from the list
  rows.onProfile(renamed, [sent, reacted, other]);

  assertEqual(members.displayName(2), "Olga K.", "the member list");
  assertEqual(list.querySelector('[data-user-id="2"] .member-name').textContent, "Olga K.", "the member row");
  assertEqual(rows.node("a").querySelector(".msg-author").textContent, "Olga K.", "her message");
  assertEqual(sent.sender.display_name, "Olga K.", "the module's copy, for later redraws");
  assertEqual(rows.node("b").querySelector(".reaction-chip").title, "Olga K. reacted with 🎉", "her reaction");
  assertEqual(rows.node("c") === untouched, true, "rows not naming her are not redrawn");
  list.remove();
  shown.remove();
});
