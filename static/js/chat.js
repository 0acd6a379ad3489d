// The room page: history over REST, live events over the one WebSocket (docs/protocol.md).
//
// This module wires the page's parts together and keeps only what belongs to the page as a
// whole: the reader's role in the room, whether they are still in it, and the room's header.
//   timeline.js       the messages shown and the changes applied; its invariants: a message is on
//                     screen at most once (upserted by id), rows are in sequence order, every change
//                     up to lastChange is applied, a stale copy never replaces a newer one
//   message-view.js   drawing the rows (the timeline's view)
//   history.js        REST pages: the newest first, older ones on scroll-back
//   scroller.js       the scrolling pane
//   outbox.js         messages sent but not yet confirmed
//   editing.js        inline edits, the delete dialog, edits and deletions in flight
//   receipts-view.js  read receipts, both ways
//   typing.js         "… is typing", both ways
//   threads.js        the thread panel (replies live, and their own outbox); reactions.js: chips, picker
//   members.js        the member list, presence dots, the member menu (role, owner, remove, message)
//   room-manage.js    room settings, delete, leaving with a confirmation; drawers.js: the phone layout
//   composer.js       the composer
//   sidebar.js        the room list and the live session (shared with the home page)
//   e2ee.js           end-to-end encryption of direct rooms: this device's key, sealing and opening
// User content only reaches the DOM through textContent (see dom.js `el`). Limits come from the
// server (client-config, core/context_processors.py).
import { paintAvatars, readJsonScript, ROLE_LABELS, roomIcon } from "./dom.js";
import { getJson, HttpError } from "./api.js";
import { AttachmentTray, bindAttachmentInputs } from "./attachments.js";
import { Composer } from "./composer.js";
import { Editing } from "./editing.js";
import { History } from "./history.js";
import { Inbox } from "./inbox.js";
import { MentionComplete } from "./mention-complete.js";
import { Members } from "./members.js";
import { MessageRows } from "./message-view.js";
import { Outbox } from "./outbox.js";
import { ReactionPicker, toggleFrame } from "./reactions.js";
import { ReceiptsView } from "./receipts-view.js";
import { Scroller } from "./scroller.js";
import { RoomList, Session, setPageTitle, sidebarRow } from "./sidebar.js";
import { confirmer, RoomManagement } from "./room-manage.js";
import { setUpDrawers } from "./drawers.js";
import { ThreadPanel } from "./threads.js";
import { Timeline } from "./timeline.js";
import { TypingIndicator, TypingNotifier } from "./typing.js";
import { BoardsPanel } from "./board/split.js";
import { DeviceKeys, Sealer, supported as e2eeSupported } from "./e2ee.js";
import { sendJson } from "./api.js";

const PAGE_SIZE = 50; // messages per REST page (at most the server's message_page_max)
const NOT_A_MEMBER = "You are no longer a member of this room";

const config = readJsonScript("client-config");
const room = readJsonScript("room-data");
const me = readJsonScript("me-data");

const ui = {
  badge: document.getElementById("conn-badge"),
  notice: document.getElementById("room-notice"),
  roomName: document.getElementById("room-name"),
  roomTopic: document.getElementById("room-topic"),
  messages: document.getElementById("messages"),
  myRole: document.getElementById("my-role"),
};

// The reader in this room.
let role = room.role;
let removed = false; // no longer a member: nothing more arrives for this room
let started = false;

const roomUrl = (suffix = "") => `/api/v1/rooms/${encodeURIComponent(room.id)}/${suffix}`;
const counted = (result) => ({ added: Number(result === "added"), updated: Number(result === "updated") });

/** Whether the reader's role right now allows `ability` ("send", "manage": rooms/access.py). */
const can = (ability) => Boolean(config.roles[role] && config.roles[role][ability]);

/** What the reader may do with a message, given their role right now. */
function permissions(message) {
  if (message.deleted || removed) return { edit: false, remove: false, receipts: false, reply: false, react: false };
  const mine = rows.isMine(message);
  return {
    edit: mine && can("send") && !room.encrypted, // no edits in encrypted rooms (docs/e2ee.md)
    remove: mine || can("manage"),
    receipts: mine,
    reply: can("reply"),
    react: can("react"),
  };
}

// ---------------------------------------------------------------------------------------------
// The parts

const rooms = new RoomList(document.getElementById("sidebar-rooms"), {
  renderRow: (data, options) => sidebarRow(data, { ...options, me }),
  current: room.id,
});
const session = new Session({ rooms, current: room.id, onFrame, onState: setBadge });
const send = (frame) => session.send(frame);
const boards = new BoardsPanel({
  room,
  me,
  can: (ability) => !removed && can(ability),
  send,
  follow: (ids) => session.setBoards(ids), // over SSE or long-polling the stream follows the open board
  list: document.getElementById("board-list"),
  form: document.getElementById("board-create"),
  split: document.getElementById("board-split"),
  layout: document.querySelector(".chat-layout"),
});

// End-to-end encryption (e2ee.js, docs/e2ee.md), direct rooms only: opening one publishes this
// device's key, so that the other person can write to it once the room is encrypted.
const deviceKeys = room.kind === "direct" && e2eeSupported() ? new DeviceKeys(me) : null;
const sealer =
  deviceKeys && new Sealer({ keys: deviceKeys, roomId: room.id, members: () => members.all().map((m) => m.id) });
/** What a send carries: the text, or in an encrypted room its envelope. */
function seal(text) {
  if (!room.encrypted) return null;
  return sealer ? sealer.seal(text) : Promise.reject(new Error("this browser has no WebCrypto"));
}
const openSealed = sealer ? (message) => sealer.open(message) : null;
const outbox = new Outbox(document.getElementById("pending"), { roomId: room.id, me, send, seal });
// Reactions name people by their display name from the member list (a user who left: the username).
const nameOf = (user) => members.displayName(user.id) || user.username;
const rows = new MessageRows(ui.messages, {
  me,
  can: permissions,
  onUpdate: (message) => editing.landed(message),
  nameOf,
  open: openSealed,
});
const timeline = new Timeline({
  view: rows,
  lastChange: room.last_sequence,
  onCopy: (message) => {
    if (message.e2ee?.kind === "enabled" && !room.encrypted) applyRoomUpdate({ ...room, encrypted: true });
    outbox.settle(message);
    threadOutbox.settle(message);
    threads.onCopy(message);
  },
  requestSync: (after) => !removed && send({ type: "sync", room: room.id, after_sequence: after }),
});
const scroller = new Scroller(document.getElementById("scroller"), document.getElementById("jump-latest"), {
  onNearTop: () => historyPages.loadOlder(),
  onMoved: () => receipts.noteProgress(), // scrolling newer messages into view reads them
});
const receipts = new ReceiptsView({
  roomId: room.id,
  me,
  timeline,
  rows,
  sender: session.receipts,
  readUpTo: () =>
    scroller.nearBottom()
      ? Math.max(timeline.lastChange, timeline.highest)
      : rows.lastSequenceAbove(scroller.visibleBottom),
  editingId: () => editing.editingId,
  receiptsUrl: (id) => roomUrl(`messages/${encodeURIComponent(id)}/receipts/`),
});
/** Who @ may complete to: the room's members but me, and @room for owners and admins (rooms/access.py). */
const mentionable = () => [
  ...(can("mention_room") ? [{ username: "room", label: "everyone in this room" }] : []),
  ...[...document.querySelectorAll("#member-list [data-username]")]
    .filter((row) => Number(row.dataset.userId) !== me.id)
    .map((row) => ({ username: row.dataset.username })),
];
// In the thread's reply box too, attached before the thread panel's own Enter handler.
new MentionComplete(document.getElementById("thread-input"), { people: mentionable });
// Threads and reactions (docs/protocol.md "Threads and reactions").
const threadOutbox = new Outbox(document.getElementById("thread-pending"), { roomId: room.id, me, send, seal });
// The thread's reply box attaches files as the room's composer does (below), with a tray of its own.
const threadAttachments = new AttachmentTray(document.getElementById("thread-attachments"), { roomId: room.id });
bindAttachmentInputs({
  form: document.getElementById("thread-composer"),
  textarea: document.getElementById("thread-input"),
  button: document.getElementById("thread-attach-button"),
  input: document.getElementById("thread-attach-input"),
  tray: threadAttachments,
});
const threads = new ThreadPanel(document.getElementById("thread-panel"), {
  me,
  nameOf,
  open: openSealed,
  attachments: threadAttachments,
  outbox: threadOutbox,
  can: (message) => permissions(message),
  fetchThread: (id, params) =>
    getJson(`${roomUrl(`messages/${encodeURIComponent(id)}/thread/`)}?${new URLSearchParams(params)}`),
  onAction: (id, action, target) => onAction(threads.message(id), threads.node(id), action, target),
});
const reacting = new Set(); // message ids with a reaction frame unanswered (its error names the row)
const picker = new ReactionPicker({ onPick: (id, emoji) => react(id, emoji) });

/** ArrowUp in the empty composer: open my newest message I may still edit in its editor. */
function editLastMessage() {
  const mine = timeline.newest((message) => permissions(message).edit && rows.node(message.id) !== null);
  if (!mine) return false;
  editing.start(mine.id);
  return true;
}

/** Toggle my `emoji` reaction on message `id` (the answer comes as the message's next copy). */
function react(id, emoji) {
  const message = timeline.message(id) || threads.message(id);
  if (!message) return;
  if (send(toggleFrame(room.id, message, emoji, me))) reacting.add(id);
  else rows.showError(id, "Couldn't react: not connected.");
}

// The composer's @name completion (mention-complete.js), attached before the composer's own key
// handler so that its keys (Enter, Tab, arrows, Escape) come first.
new MentionComplete(document.getElementById("composer-input"), { people: mentionable });
// The notification inbox and this room's notification level (inbox.js, docs/notifications.md).
const inbox = new Inbox(document.getElementById("inbox"), { me, roomId: room.id });
const composer = new Composer(document.getElementById("composer"), {
  maxLength: config.message_max_length,
  onSend: (content, files) => {
    outbox.queue(content, files);
    scroller.toBottom();
  },
  onInput: () => typingOut.note(),
  onEditLast: () => editLastMessage(),
});
// Attachments (attachments.js): the attach button, drops and pastes fill the tray; a send takes its uploads.
composer.attachments = new AttachmentTray(document.getElementById("composer-attachments"), { roomId: room.id });
bindAttachmentInputs({
  form: document.getElementById("composer"),
  textarea: document.getElementById("composer-input"),
  button: document.getElementById("attach-button"),
  input: document.getElementById("attach-input"),
  tray: composer.attachments,
});
const editing = new Editing({
  timeline,
  rows,
  dialog: document.getElementById("delete-dialog"),
  preview: document.getElementById("delete-preview"),
  roomId: room.id,
  send,
  maxLength: config.message_max_length,
  afterRedraw: () => receipts.refresh(),
  focusComposer: () => composer.focus(),
});
const typingOut = new TypingNotifier({
  intervalMs: config.typing_interval_ms,
  send: () => send({ type: "typing", room: room.id }),
  hasDraft: () => !removed && composer.hasDraft(),
});
const typingIn = new TypingIndicator(document.getElementById("typing"), document.getElementById("typing-text"), {
  roomId: room.id,
  me,
});
const members = new Members(document.getElementById("member-list"), document.getElementById("member-count"), {
  me,
  presenceUrl: roomUrl("presence/"),
  onRestError: handleRestError,
  roomUrl,
  myRole: () => role,
  ability: (someRole, ability) => config.roles[someRole]?.[ability],
  confirm: confirmer(document.getElementById("confirm-dialog")),
  message: (username) => {
    const form = document.getElementById("direct-form");
    form.elements.user.value = username;
    form.submit();
  },
  leave: () => management.askToLeave(),
  status: document.getElementById("member-status"),
  removed: () => removed,
});
const management = new RoomManagement({
  me,
  members: () => members.all(),
  confirm: confirmer(document.getElementById("confirm-dialog")),
});
const historyPages = new History(document.getElementById("history-status"), {
  timeline,
  scroller,
  pageSize: Math.min(PAGE_SIZE, config.message_page_max),
  fetchPage: (params) => getJson(`${roomUrl("messages/")}?${new URLSearchParams(params)}`),
  onError: handleRestError,
  canLoad: () => !removed,
  room: () => ({ kind: room.kind, name: ui.roomName.textContent }),
  afterLoad: () => receipts.refresh(),
  retryNewest: boot,
});

// ---------------------------------------------------------------------------------------------
// The page as a whole

/** 403/404 on our own room means we were removed while we weren't looking. */
function handleRestError(error) {
  if (error instanceof HttpError && (error.status === 403 || error.status === 404)) {
    onRemovedFromRoom();
    return true;
  }
  if (error instanceof HttpError && error.status === 401) {
    setBadge("signed-out");
    return true;
  }
  console.warn("Parley:", error);
  return false;
}

const BADGE_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  "signed-out": "Signed out",
};
// Which transport carries the page (live.js): said only when it is not the usual WebSocket.
const TRANSPORT_TEXT = { sse: " (SSE)", poll: " (long-polling)" };

/** connection: live.js's state; transport: "websocket" | "sse" | "poll". */
function setBadge(connection, transport = "websocket") {
  boards.onSocketState(connection, transport); // the board open next to the chat, on any transport
  if (connection !== "connected") {
    // Whatever was sent and not answered on the lost connection says so (and goes again later).
    outbox.disconnected(connection === "offline");
    threadOutbox.disconnected(connection === "offline");
  }
  ui.badge.dataset.state = connection;
  ui.badge.dataset.transport = transport;
  ui.badge.textContent = BADGE_TEXT[connection] + (connection === "connected" ? TRANSPORT_TEXT[transport] || "" : "");
  if (connection === "signed-out") showNotice("Your session has ended. Sign in again to keep chatting.");
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

function refreshComposer() {
  composer.setAccess({ removed, canSend: can("send"), roomName: ui.roomName.textContent });
}

/**
 * Invite is for owners and admins (the server renders it only for them; a demotion hides it
 * here), and neither invite nor leave makes sense once we are out of the room.
 */
function refreshMembershipControls() {
  const invite = document.getElementById("invite-form")?.closest("section");
  if (invite) invite.hidden = removed || !can("manage");
  const leave = document.getElementById("leave-form");
  if (leave) leave.hidden = removed;
  management.refresh({ role, canManage: can("manage"), removed });
}

function setRole(newRole) {
  const changed = newRole !== role;
  role = newRole;
  threads.setAccess(!removed && can("reply"));
  if (ui.myRole) ui.myRole.textContent = ROLE_LABELS[role] || role;
  refreshMembershipControls();
  refreshComposer();
  refreshEncryption();
  boards.refreshForm();
  if (changed) {
    if (!can("send")) editing.stop();
    rows.refreshActions(timeline.messages());
  }
}

function onRemovedFromRoom() {
  if (removed) return;
  removed = true;
  showNotice(NOT_A_MEMBER);
  outbox.failAll(`${NOT_A_MEMBER}.`, "not_found");
  editing.reset();
  typingIn.clear();
  receipts.setActive(false);
  // No more events arrive for this room, so what's left of the side panel would only go stale.
  members.remove(me.id);
  if (ui.myRole) ui.myRole.textContent = "not a member";
  refreshMembershipControls();
  refreshComposer();
  rows.refreshActions(timeline.messages());
  threadOutbox.failAll(`${NOT_A_MEMBER}.`, "not_found");
  threads.refreshActions(false);
}

function onReaddedToRoom(data) {
  removed = false;
  showNotice("");
  receipts.setActive(true);
  setRole(data.role);
  rows.refreshActions(timeline.messages());
  timeline.catchUp(data.last_sequence || 0);
  members.loadPresence();
}

// ---------------------------------------------------------------------------------------------
// End-to-end encryption (direct rooms: the bar under the header says whether it is on)

const e2eeBar = document.getElementById("e2ee-bar");
const E2EE_ON =
  "End-to-end encrypted: only your devices and theirs can read new messages. " +
  "Search and notification previews are off in this conversation.";

function refreshEncryption() {
  if (!e2eeBar) return;
  e2eeBar.dataset.encrypted = String(Boolean(room.encrypted));
  e2eeBar.querySelector("#e2ee-state").textContent = room.encrypted ? E2EE_ON : "Not end-to-end encrypted.";
  e2eeBar.querySelector("#e2ee-enable").hidden = Boolean(room.encrypted) || !deviceKeys || removed || !can("send");
  e2eeBar.querySelector("#e2ee-verify").hidden = !room.encrypted || !sealer;
  // Files would not be encrypted (the server refuses them here).
  for (const id of ["attach-button", "thread-attach-button"]) document.getElementById(id).hidden = Boolean(room.encrypted);
}

async function enableEncryption() {
  const ok = await confirmer(document.getElementById("confirm-dialog"))({
    title: "Turn on end-to-end encryption?",
    text:
      "New messages will be readable only on your and their devices that hold a key now. " +
      "It cannot be turned off; search, notification previews, edits and files stop working here.",
    ok: "Turn on",
  });
  if (!ok) return;
  try {
    applyRoomUpdate(await sendJson("POST", roomUrl("encryption/")));
  } catch (error) {
    if (!handleRestError(error)) showNotice(`Couldn't turn on encryption: ${error.message}`);
  }
}

// Verifying (docs/e2ee.md "Verifying"): the two people compare the room's safety number out of
// band; this browser remembers the number they agreed on and says when the devices behind it change.
const verifiedKey = `parley-e2ee-verified:${me.id}:${room.id}`;

async function checkVerification() {
  if (!room.encrypted || !sealer) return;
  const agreed = localStorage.getItem(verifiedKey);
  const state = !agreed ? "no" : agreed === (await sealer.safetyNumber()) ? "yes" : "changed";
  e2eeBar.dataset.verified = state;
  e2eeBar.querySelector("#e2ee-verified").textContent = {
    no: "",
    yes: "Verified.",
    changed: "Their or your devices changed since you verified: verify again.",
  }[state];
}

async function verifyEncryption() {
  let number;
  try {
    number = await sealer.safetyNumber();
  } catch (error) {
    if (!handleRestError(error)) showNotice(`Couldn't read the devices: ${error.message}`);
    return;
  }
  const other = members.all().find((member) => member.id !== me.id);
  const ok = await confirmer(document.getElementById("confirm-dialog"))({
    title: "Verify end-to-end encryption",
    text:
      `Compare this safety number with the one ${other ? nameOf(other) : "the other person"} sees here, ` +
      `in person or on a call: ${number}. If they match, only your devices and theirs can read new messages.`,
    ok: "They match",
  });
  if (ok) localStorage.setItem(verifiedKey, number);
  await checkVerification();
}

if (e2eeBar) {
  e2eeBar.querySelector("#e2ee-enable").addEventListener("click", enableEncryption);
  e2eeBar.querySelector("#e2ee-verify").addEventListener("click", verifyEncryption);
  deviceKeys?.device().then(
    () => {
      e2eeBar.dataset.device = "ready"; // published: the other person can write to this device
      checkVerification().catch(() => {}); // offline: the next check says it
    },
    (error) => {
      e2eeBar.dataset.device = "failed";
      e2eeBar.querySelector("#e2ee-state").textContent = `This device has no encryption key yet: ${error.message}`;
    },
  );
}

/** room.update: someone (maybe on another screen) renamed the room or changed its topic or kind, or
 * turned on end-to-end encryption. */
function applyRoomUpdate(data) {
  const newlyEncrypted = Boolean(data.encrypted) && !room.encrypted;
  Object.assign(room, { name: data.name, topic: data.topic, kind: data.kind, encrypted: Boolean(data.encrypted) });
  if (newlyEncrypted) {
    editing.stop();
    rows.refreshActions(timeline.messages());
  }
  refreshEncryption();
  ui.roomName.textContent = data.name;
  ui.roomName.parentElement.querySelector(".room-icon")?.replaceWith(roomIcon(data.kind));
  ui.roomTopic.textContent = data.topic || "";
  ui.roomTopic.hidden = !data.topic;
  setPageTitle(`${data.name} · Parley`);
  management.showRoom(data);
  historyPages.refreshBanner();
  refreshComposer();
}

function onMemberUpdate(member) {
  members.update(member);
  if (member.user.id !== me.id) return;
  if (member.role === null) onRemovedFromRoom();
  else setRole(member.role);
}

// ---------------------------------------------------------------------------------------------
// Socket frames

/** Apply copies of messages, following them down only if the reader was already at the bottom. */
function applying(change, options) {
  const { added, updated } = scroller.following(change, options);
  if (added || updated) {
    receipts.refresh();
    receipts.noteProgress();
  }
}

function onSessionReady(frame) {
  const latest = frame.rooms[room.id];
  if (latest === undefined) {
    onRemovedFromRoom();
    return;
  }
  outbox.flush();
  threadOutbox.flush();
  editing.resend();
  timeline.catchUp(latest, { restart: true });
  members.loadPresence();
  receipts.reload();
  receipts.noteProgress(); // opening the room marks it read
}

/** message.new / message.edit / message.delete: `sequence` is the change's number. */
function onChange(frame) {
  if (frame.room !== room.id || removed) return;
  if (frame.type === "message.new" && frame.message.sender) typingIn.stop(frame.message.sender.id);
  applying(() => counted(timeline.applyChange(frame.sequence, frame.message)));
  receipts.noteProgress();
}

function onSyncBatch(frame) {
  if (frame.room !== room.id || removed) return;
  applying(() => timeline.applySyncBatch(frame));
  if (!timeline.syncing) receipts.noteProgress();
}

/** The server stored our message: swap the grey pending row for the real one. */
function onAck(frame) {
  if (frame.room !== room.id) return;
  outbox.acknowledged(frame.client_msg_id);
  threadOutbox.acknowledged(frame.client_msg_id);
  applying(() => timeline.upsertAll([frame.message]), { follow: !frame.message.reply_to });
}

/** The server applied one of our edits or deletions. */
function onChangeAck(frame) {
  if (frame.room !== room.id || removed) return;
  applying(() => timeline.upsertAll([frame.message]));
  editing.acknowledged(frame.message);
}

/** reaction.ack: the message as my reaction left it. */
function onReactionAck(frame) {
  if (frame.room !== room.id) return;
  reacting.delete(frame.id);
  applying(() => timeline.upsertAll([frame.message]));
  threads.onCopy(frame.message); // a reply older than the loaded history is in the panel only
}

function onError(frame) {
  if (outbox.fail(frame.ref, frame.message, frame.code, frame.retry_after_ms)) return;
  if (threadOutbox.fail(frame.ref, frame.message, frame.code, frame.retry_after_ms)) return;
  if (reacting.delete(frame.ref)) {
    rows.showError(frame.ref, `Couldn't react: ${frame.message}`);
    return;
  }
  if (editing.refused(frame.ref, frame.message)) return;
  console.warn("Parley: server error", frame.code, frame.message);
}

/** Someone's new display name or picture (mine too, from another tab or device): redrawn
 * wherever the page shows it: the member list, the rows they sent or reacted to, the thread. */
function onProfile({ user }) {
  if (user.id === me.id) Object.assign(me, user); // what the outbox draws my messages with
  members.onProfile(user); // first: reaction tooltips read names from the member list
  rows.onProfile(user, timeline.messages());
  threads.onProfile(user);
}

const handlers = {
  "session.ready": onSessionReady,
  "message.new": onChange,
  "message.edit": onChange,
  "message.delete": onChange,
  "message.update": onChange,
  "reaction.ack": onReactionAck,
  "message.ack": onAck,
  "message.edit.ack": onChangeAck,
  "message.delete.ack": onChangeAck,
  "sync.batch": onSyncBatch,
  receipt: (frame) => receipts.onReceipt(frame),
  presence: (frame) => members.onPresence(frame),
  "user.profile": onProfile,
  typing: (frame) => typingIn.onTyping(frame),
  error: onError,
  "member.update": (frame) => frame.room === room.id && onMemberUpdate(frame.member),
  "room.update": (frame) => frame.room.id === room.id && applyRoomUpdate(frame.room),
  "room.added": (frame) => {
    if (frame.room.id !== room.id) return;
    if (removed) onReaddedToRoom(frame.room);
    else setRole(frame.room.role); // our role changed
  },
  "room.removed": (frame) => frame.room === room.id && onRemovedFromRoom(),
};

// Called by the Session after the room list has had the frame.
function onFrame(frame) {
  handlers[frame.type]?.(frame);
  inbox.onFrame(frame); // notifications, and session.ready: the inbox is read again after a reconnect
  boards.onFrame(frame); // the boards list and the board open next to the chat (board/split.js)
}

// ---------------------------------------------------------------------------------------------
// Start-up

function onMessageAction(event) {
  const hit = rows.actionAt(event.target);
  const message = hit && timeline.message(hit.id);
  if (!message) return;
  const can = permissions(message);
  if (hit.action === "edit" && can.edit) editing.start(hit.id);
  else if (hit.action === "delete" && can.remove) editing.askToDelete(hit.id);
  else if (hit.action === "receipts") receipts.toggle(hit.id);
  else onAction(message, rows.node(hit.id), hit.action, event.target);
}

/** Thread and reaction actions, in the message list or in the thread panel. */
function onAction(message, node, action, target) {
  if (!message) return;
  if (action === "thread") threads.open(message);
  else if (action === "react-pick" && permissions(message).react && node) picker.toggle(node, message.id);
  else if (action === "react-toggle" && permissions(message).react) {
    react(message.id, target.closest("[data-emoji]").dataset.emoji);
  }
}

async function boot() {
  // History first, socket second: a live message then always lands after a known newest
  // page, and session.ready's numbers tell us exactly what to sync on top.
  if (!(await historyPages.loadNewest()) || started) return;
  started = true;
  session.start();
  showLinkedMessage();
}

/** A search result links here as #message-<sequence>: load history back to it and show it. */
async function showLinkedMessage() {
  const match = /^#message-(\d+)$/.exec(location.hash);
  if (!match || !started) return;
  const sequence = Number(match[1]);
  const found = await historyPages.loadBackTo(sequence);
  const node = ui.messages.querySelector(`.msg[data-sequence="${sequence}"]`);
  if (!found || !node) {
    showNotice("That message is no longer in this room's history.");
    return;
  }
  node.scrollIntoView({ block: "center" });
  node.classList.add("is-found");
  node.dataset.found = "true";
  setTimeout(() => node.classList.remove("is-found"), 2500);
}

window.addEventListener("hashchange", showLinkedMessage);

ui.messages.addEventListener("click", onMessageAction);
// Coming back to the tab reads what arrived meanwhile.
document.addEventListener("visibilitychange", () => receipts.noteProgress());
window.addEventListener("focus", () => receipts.noteProgress());
paintAvatars();
setUpDrawers();
// A long room list starts at the current room (not while it is a phone's hidden drawer: that
// would scroll the page).
const activeRoom = document.querySelector("#sidebar-rooms .is-active");
if (activeRoom && getComputedStyle(activeRoom.closest(".sidebar")).position !== "fixed") {
  activeRoom.scrollIntoView({ block: "nearest", inline: "nearest" });
}
setRole(role);
boot();
