// The room page: history over REST, live events over the one WebSocket (docs/protocol.md).
//
// Invariants this file keeps:
//   * a message is on screen at most once: rows are keyed by message id, and every copy that
//     arrives (REST page, live event, sync batch, ack) is *upserted*. A copy older than the one
//     shown is ignored; a newer one (an edit, a deletion) redraws the row in place;
//   * rows are in timeline order (message.sequence), whatever order copies arrive in;
//   * every message from the oldest one loaded onwards is on screen, and every change of the room
//     numbered up to state.lastChange has been applied: "what did I miss?" is always
//     `sync after lastChange`;
//   * user content only reaches the DOM through textContent (see dom.js `el`).
import { avatar, el, insertSorted, lineIcon, paintAvatars, readJsonScript, roleBadge, roomIcon, ROLE_LABELS } from "./dom.js";
import { getJson, HttpError } from "./api.js";
import { LiveSocket } from "./live.js";
import { ReceiptSender } from "./receipts.js";
import { UnreadBadges } from "./unread.js";

const MAX_LENGTH = 4000; // docs/protocol.md: content is 1–4,000 characters
const PAGE_SIZE = 50;
const GROUP_WINDOW_MS = 5 * 60 * 1000; // consecutive messages by one person within this are grouped
const NEAR_TOP_PX = 200;
const NEAR_BOTTOM_PX = 120;
const SYNC_TIMEOUT_MS = 15000; // no sync.batch by then: ask again
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_MARGIN_MS = 150;
const TYPING_SHOW_MS = 5000;
const READERS_NAMED = 3; // "Read by alice, bob, carol"; more than that: "Read by 5"
const ROW_ERROR_MS = 6000;

const room = readJsonScript("room-data");
const me = readJsonScript("me-data");

const ui = {
  badge: document.getElementById("conn-badge"),
  notice: document.getElementById("room-notice"),
  scroller: document.getElementById("scroller"),
  historyStatus: document.getElementById("history-status"),
  messages: document.getElementById("messages"),
  pending: document.getElementById("pending"),
  jump: document.getElementById("jump-latest"),
  typing: document.getElementById("typing"),
  typingText: document.getElementById("typing-text"),
  composer: document.getElementById("composer"),
  input: document.getElementById("composer-input"),
  sendButton: document.getElementById("send-button"),
  composerError: document.getElementById("composer-error"),
  composerHint: document.getElementById("composer-hint"),
  roomName: document.getElementById("room-name"),
  roomTopic: document.getElementById("room-topic"),
  sidebar: document.getElementById("sidebar-rooms"),
  memberList: document.getElementById("member-list"),
  memberCount: document.getElementById("member-count"),
  myRole: document.getElementById("my-role"),
  deleteDialog: document.getElementById("delete-dialog"),
  deletePreview: document.getElementById("delete-preview"),
};

const state = {
  rows: new Map(), // message id -> {message, node}: everything on screen
  limbo: new Map(), // message id -> latest copy of a message older than the loaded history
  lowest: null, // lowest message sequence on screen (scroll-back continues below it)
  highestMessage: 0, // highest message sequence on screen
  reachedBeginning: false,
  loadingOlder: false,
  lastChange: room.last_sequence, // every change numbered up to this one is applied (see top)
  latestKnown: room.last_sequence, // the highest change number we know exists
  syncing: false,
  syncTimer: null,
  pending: new Map(), // client_msg_id -> {id, content, status, error, code, node}
  inflight: new Map(), // message id -> message.edit/message.delete frame sent, not yet seen applied
  editing: null, // {id, input, error} while a message is being edited inline
  deleting: null, // message id the delete dialog asks about
  marks: new Map(), // user id -> {username, delivered, read (null: they hide it)}: lower bounds
  receiptsOpen: new Set(), // older own messages whose status the reader asked to see
  receiptLines: new Set(), // message ids currently showing a status line
  typers: new Map(), // user id -> {username, timer}
  lastTypingSent: 0,
  typingTimer: null,
  presence: new Map(), // user id -> {status, last_seen_at}
  presenceTouched: new Set(), // users whose presence changed while a REST load was running
  presenceLoad: 0,
  role: room.role,
  removed: false,
  socket: null,
  started: false,
  receipts: null,
  unread: null,
};

// ---------------------------------------------------------------------------------------------
// Formatting

const pad = (n) => String(n).padStart(2, "0");
const hhmm = (date) => `${pad(date.getHours())}:${pad(date.getMinutes())}`;
const isToday = (date) => date.toDateString() === new Date().toDateString();

function dayLabel(date) {
  const yesterday = new Date();
  yesterday.setDate(yesterday.getDate() - 1);
  if (isToday(date)) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

/** Python counts code points, JavaScript counts UTF-16 units: count like the server does. */
const charCount = (text) => [...text].length;

/** Messages as sent: trailing whitespace and leading blank lines dropped, indentation kept. */
const normalise = (text) => text.replace(/^(?:[ \t]*\n)+/, "").replace(/\s+$/, "");

/**
 * How recent a copy of a message is. Only the author edits (edited_at only grows) and a deletion
 * is final, so copies of one message compare by (deleted, edited_at). ISO strings in one time
 * zone sort like the times they name.
 */
const versionOf = (message) => (message.deleted ? "~" : message.edited_at || "");

function listOfNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

// ---------------------------------------------------------------------------------------------
// REST

const roomUrl = (suffix = "") => `/api/v1/rooms/${encodeURIComponent(room.id)}/${suffix}`;

function fetchPage(params) {
  return getJson(`${roomUrl("messages/")}?${new URLSearchParams(params)}`);
}

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

// ---------------------------------------------------------------------------------------------
// Rendering messages

const ICONS = {
  edit: ["M10.2 3.2l2.6 2.6", "M11.3 2.1a1.3 1.3 0 0 1 1.9 0l.7.7a1.3 1.3 0 0 1 0 1.9L6.2 12.4 2.8 13.2l.8-3.4Z"],
  delete: ["M2.8 4.3h10.4", "M6.3 4.3V2.8h3.4v1.5", "M4.3 4.3l.7 9h6l.7-9", "M6.8 6.8v4M9.2 6.8v4"],
  seen: ["M1.5 8.6l3 3L11 4.6", "M7.4 11.1l.5.5 6.6-7"],
};

const isMine = (message) => Boolean(message.sender && message.sender.id === me.id);

/** What the reader may do with a message, given their role right now. */
function permissions(message) {
  if (message.deleted || state.removed) return { edit: false, remove: false, receipts: false };
  const mine = isMine(message);
  return {
    edit: mine && state.role !== "viewer",
    remove: mine || state.role === "owner" || state.role === "admin",
    receipts: mine,
  };
}

function actionButton(action, label, icon) {
  return el(
    "button",
    { type: "button", class: `msg-action msg-action-${action}`, "data-action": action, "aria-label": label, title: label },
    lineIcon(...icon),
  );
}

function renderActions(message) {
  const can = permissions(message);
  if (!can.edit && !can.remove && !can.receipts) return null;
  return el(
    "div",
    { class: "msg-actions", role: "toolbar", "aria-label": "Message actions" },
    can.receipts && actionButton("receipts", "Seen by", ICONS.seen),
    can.edit && actionButton("edit", "Edit message", ICONS.edit),
    can.remove && actionButton("delete", "Delete message", ICONS.delete),
  );
}

function editedMark(editedAt) {
  return el("span", { class: "msg-edited", title: `Edited ${new Date(editedAt).toLocaleString()}` }, " (edited)");
}

function renderBody(message) {
  if (message.deleted) return el("div", { class: "msg-body msg-deleted" }, "This message was deleted.");
  return el("div", { class: "msg-body" }, message.content, message.edited_at && editedMark(message.edited_at));
}

function renderMessage(message) {
  const created = new Date(message.created_at);
  const sender = message.sender; // null if the account was deleted
  return el(
    "li",
    {
      class: isMine(message) ? "msg msg-mine" : "msg",
      "data-sequence": message.sequence,
      "data-id": message.id,
      "data-sender": sender ? sender.id : "",
      "data-time": created.getTime(),
      "data-day": dayLabel(created),
      "data-deleted": message.deleted ? "true" : null,
    },
    avatar(sender),
    el(
      "div",
      { class: "msg-main" },
      el(
        "div",
        { class: "msg-meta" },
        el("span", { class: "msg-author" }, sender ? sender.username : "Deleted user"),
        el("time", { class: "msg-time", dateTime: message.created_at, title: created.toLocaleString() }, hhmm(created)),
      ),
      renderBody(message),
    ),
    renderActions(message),
  );
}

/**
 * Group a row with the one above it (same sender, same day, within a few minutes): the row
 * then hides its avatar and name, like chat apps do. A new day gets a date divider (CSS reads
 * data-day). Called for a new row and the row after it, since an insertion can split a group.
 */
function applyGrouping(node) {
  if (!node) return;
  const prev = node.previousElementSibling;
  const newDay = !prev || prev.dataset.day !== node.dataset.day;
  const sameSender = prev && node.dataset.sender !== "" && prev.dataset.sender === node.dataset.sender;
  const close = prev && Number(node.dataset.time) - Number(prev.dataset.time) < GROUP_WINDOW_MS;
  node.classList.toggle("is-new-day", newDay);
  node.classList.toggle("is-continuation", Boolean(!newDay && sameSender && close));
}

/** The row a message with `sequence` must go in front of (null: append). */
function rowAfter(sequence) {
  const first = ui.messages.firstElementChild;
  const last = ui.messages.lastElementChild;
  if (!last || Number(last.dataset.sequence) < sequence) return null; // the common case: newest
  if (Number(first.dataset.sequence) > sequence) return first; // scroll-back
  let node = last;
  while (node && Number(node.dataset.sequence) > sequence) node = node.previousElementSibling;
  return node ? node.nextElementSibling : first;
}

function insertRow(message) {
  const node = renderMessage(message);
  ui.messages.insertBefore(node, rowAfter(message.sequence));
  state.rows.set(message.id, { message, node });
  applyGrouping(node);
  applyGrouping(node.nextElementSibling);
  if (state.lowest === null || message.sequence < state.lowest) state.lowest = message.sequence;
  state.highestMessage = Math.max(state.highestMessage, message.sequence);
}

/** Draw a row again from its message (or from `shown`, an optimistic copy of it). */
function redraw(entry, shown = entry.message) {
  const node = renderMessage(shown);
  entry.node.replaceWith(node);
  entry.node = node;
  applyGrouping(node);
  applyGrouping(node.nextElementSibling);
  return node;
}

/** Loaded history is everything from `lowest` on; older messages arrive with scroll-back. */
const inLoadedRange = (sequence) => state.reachedBeginning || state.lowest === null || sequence >= state.lowest;

/**
 * Put one copy of a message on screen. `history`: it comes from a REST page that extends the
 * loaded range. Returns "added", "updated" or null (nothing to show).
 */
function upsert(message, { history = false } = {}) {
  if (isMine(message) && state.pending.has(message.client_msg_id)) dropPending(message.client_msg_id);
  const entry = state.rows.get(message.id);
  if (entry) {
    if (versionOf(message) <= versionOf(entry.message)) return null; // a copy we already show (or older)
    entry.message = message;
    state.inflight.delete(message.id); // our edit or deletion (or a later one) has landed
    if (state.editing?.id === message.id) {
      if (!message.deleted) return "updated"; // keep the editor; closing it draws the latest text
      state.editing = null;
    }
    redraw(entry);
    return "updated";
  }
  if (!history && !inLoadedRange(message.sequence)) {
    // Older than anything loaded: remember the newest copy so scroll-back can't show a stale one.
    const known = state.limbo.get(message.id);
    if (!known || versionOf(message) > versionOf(known)) state.limbo.set(message.id, message);
    return null;
  }
  const kept = state.limbo.get(message.id);
  if (kept) {
    state.limbo.delete(message.id);
    if (versionOf(kept) > versionOf(message)) message = kept;
  }
  insertRow(message);
  return "added";
}

// ---------------------------------------------------------------------------------------------
// Scrolling

const distanceFromBottom = () => ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight;
const isNearBottom = () => distanceFromBottom() < NEAR_BOTTOM_PX;

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  ui.jump.hidden = true;
}

/** Upsert copies of messages; follow new ones down only if the reader was already at the bottom. */
function applyMessages(messages, { follow = false } = {}) {
  const wasAtBottom = isNearBottom();
  let added = 0;
  let updated = 0;
  for (const message of messages) {
    const result = upsert(message);
    if (result === "added") added += 1;
    else if (result === "updated") updated += 1;
  }
  if (!added && !updated) return;
  if (wasAtBottom || follow) scrollToBottom();
  else if (added) ui.jump.hidden = false;
  afterTimelineChange();
}

function afterTimelineChange() {
  refreshReceiptLines();
  noteProgress();
}

/**
 * Insert older messages (and update the status line above them) without moving what the
 * reader is looking at: everything below stays the same distance from the bottom.
 */
function prependKeepingPosition(messages, status) {
  const fromBottom = ui.scroller.scrollHeight - ui.scroller.scrollTop;
  setHistoryStatus(status);
  for (const message of messages) upsert(message, { history: true });
  ui.scroller.scrollTop = ui.scroller.scrollHeight - fromBottom;
  refreshReceiptLines();
}

function setHistoryStatus(status) {
  const box = ui.historyStatus;
  box.dataset.state = status;
  box.replaceChildren();
  if (status === "loading") box.append("Loading messages…");
  else if (status === "beginning") {
    box.append(
      el("div", { class: "beginning-icon", "aria-hidden": "true" }, roomIcon(room.kind)),
      el("p", { class: "beginning-name" }, ui.roomName.textContent),
      el("p", { class: "beginning-text" }, "This is the beginning of the room"),
    );
  } else if (status === "error") {
    const retry = el("button", { type: "button", class: "btn btn-secondary btn-sm" }, "Try again");
    retry.addEventListener("click", () => (state.lowest === null ? boot() : loadOlder()));
    box.append("Couldn't load messages. ", retry);
  }
}

function markBeginning() {
  state.reachedBeginning = true;
  state.limbo.clear(); // everything is loaded now: nothing can be older than the history
  setHistoryStatus("beginning");
}

// ---------------------------------------------------------------------------------------------
// History (REST, by message sequence) and catching up (socket sync, by change number)

async function loadNewest() {
  setHistoryStatus("loading");
  try {
    const page = await fetchPage({ limit: PAGE_SIZE });
    // Newest first from the server; inserting oldest first makes every insert an append.
    for (const message of [...page.results].reverse()) upsert(message, { history: true });
    if (page.has_more) setHistoryStatus("idle");
    else markBeginning();
    scrollToBottom();
    fillViewport();
    refreshReceiptLines();
    return true;
  } catch (error) {
    if (!handleRestError(error)) setHistoryStatus("error");
    return false;
  }
}

async function loadOlder() {
  if (state.loadingOlder || state.reachedBeginning || state.lowest === null || state.removed) return;
  state.loadingOlder = true;
  setHistoryStatus("loading");
  let ok = false;
  try {
    const page = await fetchPage({ before_sequence: state.lowest, limit: PAGE_SIZE });
    const more = page.has_more && page.results.length > 0;
    prependKeepingPosition(page.results, more ? "idle" : "beginning");
    if (!more) markBeginning();
    ok = true;
  } catch (error) {
    if (!handleRestError(error)) prependKeepingPosition([], "error");
  } finally {
    state.loadingOlder = false;
  }
  // The reader may still be at the top (a fast fling, or a tall window): keep going.
  if (ok && ui.scroller.scrollTop < NEAR_TOP_PX) loadOlder();
}

/** A short page in a tall window leaves no scrollbar to scroll with: load until there is one. */
function fillViewport() {
  if (ui.scroller.scrollHeight <= ui.scroller.clientHeight) loadOlder();
}

/**
 * Ask the server for every change after lastChange. One request at a time: what arrives live
 * meanwhile is upserted, and if the finished sync still falls short of the newest number we
 * know of, we ask again from where it ended.
 */
function requestSync() {
  if (state.syncing || state.removed) return;
  const frame = { type: "sync", room: room.id, after_sequence: state.lastChange };
  if (!state.socket?.send(frame)) return; // offline: session.ready asks again
  state.syncing = true;
  armSyncTimeout();
}

function armSyncTimeout() {
  clearTimeout(state.syncTimer);
  state.syncTimer = setTimeout(() => {
    state.syncing = false; // the answer got lost (or the server failed): ask again
    requestSync();
  }, SYNC_TIMEOUT_MS);
}

function onSyncBatch(frame) {
  if (frame.room !== room.id || state.removed) return;
  applyMessages(frame.events.map((event) => event.message));
  // After this batch we hold every change up to its last_sequence.
  state.lastChange = Math.max(state.lastChange, frame.last_sequence);
  state.latestKnown = Math.max(state.latestKnown, state.lastChange);
  if (frame.has_more) {
    armSyncTimeout();
    return;
  }
  state.syncing = false;
  clearTimeout(state.syncTimer);
  if (state.latestKnown > state.lastChange) requestSync();
  noteProgress();
}

/** message.new / message.edit / message.delete: `sequence` is the change's number. */
function onChange(frame) {
  if (frame.room !== room.id || state.removed) return;
  const number = frame.sequence;
  state.latestKnown = Math.max(state.latestKnown, number);
  if (frame.type === "message.new" && frame.message.sender) stopTyping(frame.message.sender.id);
  applyMessages([frame.message]);
  if (state.syncing) return; // the running sync ends by checking latestKnown
  if (number === state.lastChange + 1) state.lastChange = number;
  else if (number > state.lastChange + 1) requestSync(); // a hole: some change never reached us
  noteProgress();
}

// ---------------------------------------------------------------------------------------------
// Sending: optimistic pending rows keyed by client_msg_id, resent after reconnects

/** crypto.randomUUID exists only in secure contexts (https, localhost); plain-http hosts need the fallback. */
function newClientMsgId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function renderPending(entry) {
  const status = el("span", { class: "msg-status" });
  const failure = el("div", { class: "msg-failure", hidden: true });
  return el(
    "li",
    { class: "msg msg-mine msg-pending", "data-client-msg-id": entry.id },
    avatar(me),
    el(
      "div",
      { class: "msg-main" },
      el("div", { class: "msg-meta" }, el("span", { class: "msg-author" }, me.username), status),
      el("div", { class: "msg-body" }, entry.content),
      failure,
    ),
  );
}

function updatePendingRow(entry) {
  const node = entry.node;
  node.classList.toggle("is-failed", entry.status === "failed");
  const status = node.querySelector(".msg-status");
  const failure = node.querySelector(".msg-failure");
  status.textContent =
    entry.status === "failed" ? "Not sent" : entry.status === "sent" ? "Sending…" : "Waiting for connection…";
  failure.hidden = entry.status !== "failed";
  if (entry.status !== "failed") return;
  const retry = el("button", { type: "button", class: "btn btn-secondary btn-xs" }, "Retry");
  const discard = el("button", { type: "button", class: "btn btn-ghost btn-xs" }, "Discard");
  retry.addEventListener("click", () => retrySend(entry));
  discard.addEventListener("click", () => discardPending(entry));
  failure.replaceChildren(el("span", { class: "msg-failure-text" }, entry.error), retry, discard);
}

function transmit(entry) {
  const frame = { type: "message.send", room: room.id, content: entry.content, client_msg_id: entry.id };
  entry.status = state.socket?.send(frame) ? "sent" : "queued";
  updatePendingRow(entry);
}

function queueSend(content) {
  const entry = { id: newClientMsgId(), content, status: "queued", error: "", code: "", node: null };
  entry.node = renderPending(entry);
  state.pending.set(entry.id, entry);
  ui.pending.append(entry.node);
  transmit(entry);
  scrollToBottom();
}

/** After (re)connecting: send everything not yet acknowledged. Same ids, so the server dedupes. */
function flushPending() {
  for (const entry of state.pending.values()) if (entry.status !== "failed") transmit(entry);
}

function retrySend(entry) {
  if (entry.code === "client_msg_id_reused") {
    // That id belongs to another room's message: only a fresh one can succeed.
    state.pending.delete(entry.id);
    entry.id = newClientMsgId();
    entry.node.dataset.clientMsgId = entry.id;
    state.pending.set(entry.id, entry);
  }
  entry.error = "";
  entry.code = "";
  transmit(entry);
}

function discardPending(entry) {
  state.pending.delete(entry.id);
  entry.node.remove();
}

function dropPending(clientMsgId) {
  const entry = state.pending.get(clientMsgId);
  if (!entry) return;
  state.pending.delete(clientMsgId);
  entry.node.remove();
}

function failPending(entry, message, code) {
  entry.status = "failed";
  entry.error = message || "The message could not be sent.";
  entry.code = code || "";
  updatePendingRow(entry);
}

/** The server stored our message: swap the grey pending row for the real one. */
function resolvePending(clientMsgId, message) {
  dropPending(clientMsgId);
  applyMessages([message], { follow: true });
}

// ---------------------------------------------------------------------------------------------
// Editing and deleting

function showRowError(entry, text) {
  const line = el("p", { class: "msg-row-error", role: "alert" }, text);
  entry.node.querySelector(".msg-main")?.append(line);
  setTimeout(() => line.remove(), ROW_ERROR_MS);
}

function autosizeBox(box, max = 200) {
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, max)}px`;
}

function startEditing(entry) {
  if (state.editing) stopEditing();
  const input = el("textarea", { class: "msg-edit-input", rows: 1, "aria-label": "Edit message" });
  input.value = entry.message.content;
  const error = el("p", { class: "msg-edit-error", role: "alert", hidden: true });
  const cancel = el("button", { type: "button", class: "btn btn-ghost btn-xs" }, "Cancel");
  const save = el("button", { type: "button", class: "btn btn-primary btn-xs" }, "Save");
  const editor = el(
    "div",
    { class: "msg-editor" },
    input,
    el(
      "div",
      { class: "msg-edit-bar" },
      el("span", { class: "msg-edit-hint" }, el("kbd", {}, "Enter"), " to save · ", el("kbd", {}, "Esc"), " to cancel"),
      cancel,
      save,
    ),
    error,
  );
  entry.node.querySelector(".msg-body").replaceWith(editor);
  entry.node.classList.add("is-editing");
  state.editing = { id: entry.message.id, input, error };
  input.addEventListener("input", () => autosizeBox(input, 320));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      stopEditing({ focusComposer: true });
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
      event.preventDefault();
      saveEdit();
    }
  });
  cancel.addEventListener("click", () => stopEditing({ focusComposer: true }));
  save.addEventListener("click", saveEdit);
  autosizeBox(input, 320);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

/** Close the editor and draw the message as it is now. */
function stopEditing({ focusComposer = false } = {}) {
  const editing = state.editing;
  if (!editing) return;
  state.editing = null;
  const entry = state.rows.get(editing.id);
  if (entry) redraw(entry);
  refreshReceiptLines();
  if (focusComposer && !ui.input.disabled) ui.input.focus();
}

function saveEdit() {
  const editing = state.editing;
  const entry = editing && state.rows.get(editing.id);
  if (!entry) return;
  const content = normalise(editing.input.value);
  const fail = (text) => {
    editing.error.textContent = text;
    editing.error.hidden = false;
  };
  if (!content.trim()) return fail("A message needs some text. To remove it, delete it instead.");
  if (charCount(content) > MAX_LENGTH) return fail(`Messages can be at most ${MAX_LENGTH.toLocaleString()} characters.`);
  if (content === entry.message.content) return stopEditing({ focusComposer: true });
  const frame = { type: "message.edit", room: room.id, id: entry.message.id, content };
  if (!state.socket?.send(frame)) return fail("You're offline. Try again once Parley has reconnected.");
  state.inflight.set(entry.message.id, frame);
  state.editing = null;
  // Show the new text at once; the server's message.edit redraws the row for real.
  const shown = { ...entry.message, content, edited_at: entry.message.edited_at || new Date().toISOString() };
  redraw(entry, shown).classList.add("is-saving");
  refreshReceiptLines();
  if (!ui.input.disabled) ui.input.focus();
}

function askToDelete(entry) {
  state.deleting = entry.message.id;
  const text = entry.message.content;
  ui.deletePreview.textContent = charCount(text) > 280 ? `${[...text].slice(0, 280).join("")}…` : text;
  ui.deleteDialog.returnValue = "";
  ui.deleteDialog.showModal();
}

function onDeleteDialogClosed() {
  const id = state.deleting;
  state.deleting = null;
  ui.deletePreview.textContent = ""; // the text is gone for everyone: don't keep a copy around
  const entry = id && state.rows.get(id);
  if (ui.deleteDialog.returnValue !== "delete" || !entry || entry.message.deleted) return;
  const frame = { type: "message.delete", room: room.id, id };
  if (!state.socket?.send(frame)) {
    showRowError(entry, "You're offline. Try again once Parley has reconnected.");
    return;
  }
  state.inflight.set(id, frame);
  entry.node.classList.add("is-saving");
}

/** After reconnecting: edits and deletions we never saw applied go again (repeating one is harmless). */
function resendInflight() {
  for (const frame of state.inflight.values()) state.socket.send(frame);
}

function onMessageAction(event) {
  const button = event.target.closest("[data-action]");
  const row = button?.closest(".msg[data-id]");
  const entry = row && state.rows.get(row.dataset.id);
  if (!entry) return;
  const action = button.dataset.action;
  if (action === "edit" && permissions(entry.message).edit) startEditing(entry);
  else if (action === "delete" && permissions(entry.message).remove) askToDelete(entry);
  else if (action === "receipts") toggleReceipts(entry);
}

/** The reader's role changed: redraw what each row offers. */
function refreshActions() {
  for (const entry of state.rows.values()) {
    const old = entry.node.querySelector(":scope > .msg-actions");
    const fresh = renderActions(entry.message);
    if (old && fresh) old.replaceWith(fresh);
    else if (old) old.remove();
    else if (fresh) entry.node.append(fresh);
  }
}

// ---------------------------------------------------------------------------------------------
// Read receipts: what I tell the server, and what others' marks say about my messages

function pageIsSeen() {
  return document.visibilityState === "visible" && document.hasFocus();
}

/** The highest message sequence the reader can actually see right now. */
function highestSeen() {
  if (isNearBottom()) return Math.max(state.lastChange, state.highestMessage);
  const bottom = ui.scroller.getBoundingClientRect().bottom;
  for (let node = ui.messages.lastElementChild; node; node = node.previousElementSibling) {
    if (node.getBoundingClientRect().top < bottom) return Number(node.dataset.sequence);
  }
  return 0;
}

/** Tell the batcher how far we have got: received everything applied, read what is on screen. */
function noteProgress() {
  if (state.removed || !state.receipts) return;
  const delivered = Math.max(state.lastChange, state.highestMessage);
  state.receipts.note(room.id, { delivered, read: pageIsSeen() ? highestSeen() : 0 });
}

function markOf(userId, username) {
  let mark = state.marks.get(userId);
  if (!mark) {
    mark = { username, delivered: 0, read: 0 };
    state.marks.set(userId, mark);
  }
  if (username) mark.username = username;
  return mark;
}

function onReceipt(frame) {
  if (frame.room !== room.id || frame.user.id === me.id) return;
  const mark = markOf(frame.user.id, frame.user.username);
  mark.delivered = Math.max(mark.delivered, frame.delivered_sequence || 0);
  mark.read = frame.read_sequence === null ? null : Math.max(mark.read || 0, frame.read_sequence || 0);
  refreshReceiptLines();
}

/** GET …/receipts/ for one of my messages: who has it and who read it, as lower bounds on marks. */
async function fetchReceipts(message) {
  try {
    const data = await getJson(roomUrl(`messages/${encodeURIComponent(message.id)}/receipts/`));
    for (const user of data.delivered_to) {
      const mark = markOf(user.id, user.username);
      mark.delivered = Math.max(mark.delivered, data.sequence);
    }
    for (const user of data.read_by) {
      const mark = markOf(user.id, user.username);
      if (mark.read !== null) mark.read = Math.max(mark.read, data.sequence);
      mark.delivered = Math.max(mark.delivered, data.sequence);
    }
  } catch (error) {
    if (!(error instanceof HttpError && error.status === 404)) console.warn("Parley: receipts", error);
  }
  refreshReceiptLines();
}

function receiptStatus(message) {
  const readers = [];
  let delivered = false;
  for (const [userId, mark] of state.marks) {
    if (userId === me.id) continue;
    if (mark.read !== null && mark.read >= message.sequence) readers.push(mark.username);
    if (mark.delivered >= message.sequence) delivered = true;
  }
  if (readers.length) {
    readers.sort((a, b) => a.localeCompare(b));
    const who = readers.length > READERS_NAMED ? String(readers.length) : readers.join(", ");
    return { state: "read", text: `Read by ${who}` };
  }
  return delivered ? { state: "delivered", text: "Delivered" } : { state: "sent", text: "Sent" };
}

function latestOwnEntry() {
  for (let node = ui.messages.lastElementChild; node; node = node.previousElementSibling) {
    if (node.classList.contains("msg-mine") && !node.dataset.deleted) return state.rows.get(node.dataset.id);
  }
  return null;
}

/** Status lines: always under my latest message, and under older ones the reader asked about. */
function refreshReceiptLines() {
  const wanted = new Set([...state.receiptsOpen].filter((id) => state.rows.has(id)));
  const latest = latestOwnEntry();
  if (latest) wanted.add(latest.message.id);
  for (const id of state.receiptLines) {
    if (!wanted.has(id)) state.rows.get(id)?.node.querySelector(".msg-receipt")?.remove();
  }
  state.receiptLines.clear();
  for (const id of wanted) {
    const entry = state.rows.get(id);
    if (entry.message.deleted || state.editing?.id === id) continue;
    const status = receiptStatus(entry.message);
    let line = entry.node.querySelector(".msg-receipt");
    if (!line) {
      line = el("div", { class: "msg-receipt", "data-testid": "receipt" });
      entry.node.querySelector(".msg-main").append(line);
    }
    line.dataset.state = status.state;
    if (line.textContent !== status.text) line.textContent = status.text;
    state.receiptLines.add(id);
  }
}

function toggleReceipts(entry) {
  const id = entry.message.id;
  if (state.receiptsOpen.has(id)) {
    state.receiptsOpen.delete(id);
    refreshReceiptLines();
    return;
  }
  state.receiptsOpen.add(id);
  refreshReceiptLines();
  fetchReceipts(entry.message);
}

// ---------------------------------------------------------------------------------------------
// Typing

const draftInProgress = () => !state.removed && !ui.input.disabled && Boolean(ui.input.value.trim());

function sendTyping() {
  if (draftInProgress() && state.socket?.send({ type: "typing", room: room.id })) state.lastTypingSent = Date.now();
}

/**
 * At most one typing frame per 2 s (the server drops faster ones). Keystrokes inside that window
 * are not lost: one frame goes out as soon as it ends (a little after, so the server's own
 * 2-second window has surely passed), if there is still a draft.
 */
function noteTyping() {
  if (!draftInProgress()) return;
  const wait = state.lastTypingSent + TYPING_SEND_EVERY_MS - Date.now();
  if (wait <= 0) sendTyping();
  else if (state.typingTimer === null) {
    state.typingTimer = setTimeout(() => {
      state.typingTimer = null;
      sendTyping();
    }, wait + TYPING_MARGIN_MS);
  }
}

function onTyping(frame) {
  if (frame.room !== room.id || frame.user.id === me.id) return;
  clearTimeout(state.typers.get(frame.user.id)?.timer);
  const timer = setTimeout(() => stopTyping(frame.user.id), TYPING_SHOW_MS);
  state.typers.set(frame.user.id, { username: frame.user.username, timer });
  renderTyping();
}

function stopTyping(userId) {
  const typer = state.typers.get(userId);
  if (!typer) return;
  clearTimeout(typer.timer);
  state.typers.delete(userId);
  renderTyping();
}

function renderTyping() {
  const names = [...state.typers.values()].map((typer) => typer.username);
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length > 1 && names.length <= 3) text = `${listOfNames(names)} are typing…`;
  else if (names.length > 3) text = "Several people are typing…";
  ui.typing.dataset.active = String(names.length > 0);
  ui.typingText.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Presence

const memberRow = (userId) => ui.memberList.querySelector(`[data-user-id="${CSS.escape(String(userId))}"]`);

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

function setPresence(userId, info) {
  state.presence.set(userId, info);
  const dot = memberRow(userId)?.querySelector(".presence-dot");
  if (dot) paintPresence(dot, info);
}

function onPresence(frame) {
  state.presenceTouched.add(frame.user.id);
  setPresence(frame.user.id, { status: frame.status, last_seen_at: frame.last_seen_at });
}

/** Everyone's state now; frames that arrive while this runs are newer and win. */
async function loadPresence() {
  const load = ++state.presenceLoad;
  state.presenceTouched.clear();
  try {
    const { results } = await getJson(roomUrl("presence/"));
    if (load !== state.presenceLoad) return; // a newer load is on its way
    for (const item of results) {
      if (!state.presenceTouched.has(item.user.id)) setPresence(item.user.id, item);
    }
  } catch (error) {
    handleRestError(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Composer

function showComposerError(text) {
  ui.composerError.textContent = text;
  ui.composerError.hidden = !text;
  ui.input.setAttribute("aria-invalid", text ? "true" : "false");
}

function validateDraft() {
  const count = charCount(normalise(ui.input.value));
  if (count > MAX_LENGTH) {
    showComposerError(
      `Messages can be at most ${MAX_LENGTH.toLocaleString()} characters (this one has ${count.toLocaleString()}).`,
    );
    return false;
  }
  showComposerError("");
  return true;
}

function submitDraft() {
  if (ui.input.disabled) return;
  const content = normalise(ui.input.value);
  if (!content.trim()) return; // nothing to say: not an error, just nothing to send
  if (!validateDraft()) return;
  queueSend(content);
  ui.input.value = "";
  autosizeBox(ui.input);
  ui.input.focus();
}

function setUpComposer() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitDraft();
  });
  ui.input.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a newline. isComposing: Enter also confirms IME input (CJK).
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.altKey) return;
    event.preventDefault();
    submitDraft();
  });
  ui.input.addEventListener("input", () => {
    autosizeBox(ui.input);
    validateDraft();
    noteTyping();
  });
}

function setComposerEnabled(enabled, { placeholder, hint }) {
  ui.input.disabled = !enabled;
  ui.sendButton.disabled = !enabled;
  ui.composer.classList.toggle("is-disabled", !enabled);
  ui.input.placeholder = placeholder;
  ui.composerHint.replaceChildren(...hint);
}

function refreshComposer() {
  if (state.removed) {
    setComposerEnabled(false, {
      placeholder: "You are no longer a member of this room.",
      hint: ["You can't send messages here any more."],
    });
  } else if (state.role === "viewer") {
    setComposerEnabled(false, {
      placeholder: "You can read this room but not send messages.",
      hint: ["You're a viewer here: you can read but not send."],
    });
  } else {
    setComposerEnabled(true, {
      placeholder: `Message ${ui.roomName.textContent}`,
      hint: [
        el("kbd", {}, "Enter"),
        " to send · ",
        el("kbd", {}, "Shift"),
        "+",
        el("kbd", {}, "Enter"),
        " for a new line",
      ],
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Room, membership and sidebar

/**
 * Invite is for owners and admins (the server renders it only for them; a demotion hides it
 * here), and neither invite nor leave makes sense once we are out of the room.
 */
function refreshMembershipControls() {
  const invite = document.getElementById("invite-form")?.closest("section");
  if (invite) invite.hidden = state.removed || !["owner", "admin"].includes(state.role);
  const leave = document.getElementById("leave-form");
  if (leave) leave.hidden = state.removed;
}

function setRole(role) {
  const changed = role !== state.role;
  state.role = role;
  if (ui.myRole) ui.myRole.textContent = ROLE_LABELS[role] || role;
  refreshMembershipControls();
  refreshComposer();
  if (changed) {
    if (role === "viewer" && state.editing) stopEditing();
    refreshActions();
  }
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

function onRemovedFromRoom() {
  if (state.removed) return;
  state.removed = true;
  showNotice("You are no longer a member of this room");
  for (const entry of state.pending.values()) {
    if (entry.status !== "failed") failPending(entry, "You are no longer a member of this room.", "not_found");
  }
  state.inflight.clear();
  stopEditing();
  if (ui.deleteDialog.open) ui.deleteDialog.close();
  for (const userId of [...state.typers.keys()]) stopTyping(userId);
  state.receipts?.forget(room.id);
  // No more events arrive for this room, so what's left of the side panel would only go stale.
  memberRow(me.id)?.remove();
  ui.memberCount.textContent = String(ui.memberList.children.length);
  if (ui.myRole) ui.myRole.textContent = "not a member";
  refreshMembershipControls();
  refreshComposer();
  refreshActions();
}

function onReaddedToRoom(data) {
  state.removed = false;
  showNotice("");
  setRole(data.role);
  refreshActions();
  state.latestKnown = Math.max(state.latestKnown, data.last_sequence || 0);
  if (state.latestKnown > state.lastChange) requestSync();
  loadPresence();
}

const byRoomId = (list, id) => list?.querySelector(`[data-room-id="${CSS.escape(id)}"]`);

function addSidebarRoom(data) {
  if (!ui.sidebar || byRoomId(ui.sidebar, data.id)) return;
  const link = el(
    "a",
    { class: "sidebar-room", href: `/rooms/${encodeURIComponent(data.id)}/` },
    roomIcon(data.kind),
    el("span", { class: "sidebar-room-name" }, data.name),
  );
  const item = el("li", { "data-room-id": data.id }, link);
  insertSorted(ui.sidebar, item, (node) => node.querySelector(".sidebar-room-name").textContent);
  state.unread.render(data.id);
}

function removeSidebarRoom(id) {
  if (id === room.id) return;
  byRoomId(ui.sidebar, id)?.remove();
  state.receipts?.forget(id);
}

function renameSidebarRoom(data) {
  const name = byRoomId(ui.sidebar, data.id)?.querySelector(".sidebar-room-name");
  if (name) name.textContent = data.name;
}

function applyRoomUpdate(data) {
  renameSidebarRoom(data);
  if (data.id !== room.id) return;
  ui.roomName.textContent = data.name;
  ui.roomTopic.textContent = data.topic || "";
  ui.roomTopic.hidden = !data.topic;
  document.title = `${data.name} · Parley`;
  if (state.reachedBeginning) setHistoryStatus("beginning");
  refreshComposer();
}

function renderMember(user, role) {
  const name = el("span", { class: "member-name" }, user.username);
  if (user.id === me.id) name.append(" ", el("span", { class: "muted" }, "(you)"));
  const dot = el("span", { class: "presence-dot", role: "img" });
  paintPresence(dot, state.presence.get(user.id));
  return el(
    "li",
    { class: "member", "data-user-id": user.id, "data-username": user.username },
    el("span", { class: "member-avatar" }, avatar(user, "avatar-sm"), dot),
    name,
    roleBadge(role),
  );
}

function applyMemberUpdate(member) {
  const { user, role } = member;
  const existing = memberRow(user.id);
  if (role === null) existing?.remove();
  else if (existing) existing.querySelector(".role-badge").replaceWith(roleBadge(role));
  else {
    insertSorted(ui.memberList, renderMember(user, role), (node) => node.dataset.username);
    if (!state.presence.has(user.id)) loadPresence();
  }
  ui.memberCount.textContent = String(ui.memberList.children.length);
  if (user.id === me.id) {
    if (role === null) onRemovedFromRoom();
    else setRole(role);
  }
}

// ---------------------------------------------------------------------------------------------
// Socket frames

const BADGE_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  "signed-out": "Signed out",
};

function setBadge(connection) {
  ui.badge.dataset.state = connection;
  ui.badge.textContent = BADGE_TEXT[connection];
  if (connection === "signed-out") showNotice("Your session has ended. Sign in again to keep chatting.");
}

/**
 * session.ready lists every room we belong to; room.added/room.removed sent while we were
 * disconnected are lost, so bring the sidebar in line (names come from REST if rooms are new).
 */
async function reconcileSidebar(rooms) {
  if (!ui.sidebar) return;
  for (const item of [...ui.sidebar.children]) {
    if (!(item.dataset.roomId in rooms)) removeSidebarRoom(item.dataset.roomId);
  }
  if (Object.keys(rooms).every((id) => byRoomId(ui.sidebar, id))) return;
  const { results } = await getJson("/api/v1/rooms/");
  for (const data of results) addSidebarRoom(data);
}

function onSessionReady(frame) {
  const latest = frame.rooms[room.id];
  reconcileSidebar(frame.rooms).catch((error) => console.warn("Parley:", error));
  state.receipts.onReady();
  if (latest === undefined) {
    onRemovedFromRoom();
    return;
  }
  // A sync asked on the previous socket died with it.
  state.syncing = false;
  clearTimeout(state.syncTimer);
  state.latestKnown = Math.max(state.latestKnown, latest);
  flushPending();
  resendInflight();
  if (state.latestKnown > state.lastChange) requestSync();
  loadPresence();
  // Receipt frames sent while we were away are lost: read the latest status afresh.
  const latestOwn = latestOwnEntry();
  if (latestOwn) fetchReceipts(latestOwn.message);
  noteProgress(); // opening the room marks it read
}

/** Messages reaching this page in other rooms are delivered to this device. */
function noteDeliveredElsewhere(frame) {
  if (frame.room !== room.id && frame.message.sender?.id !== me.id) {
    state.receipts.note(frame.room, { delivered: frame.sequence });
  }
}

function onError(frame) {
  const ref = frame.ref;
  const entry = ref ? state.pending.get(ref) : null;
  if (entry) {
    failPending(entry, frame.message, frame.code);
    return;
  }
  const row = ref ? state.rows.get(ref) : null;
  if (row && state.inflight.has(ref)) {
    // An edit or deletion was refused: show the message as it really is, and say why.
    const verb = state.inflight.get(ref).type === "message.edit" ? "edit" : "delete";
    state.inflight.delete(ref);
    redraw(row);
    refreshReceiptLines();
    showRowError(row, `Couldn't ${verb} this message: ${frame.message}`);
    return;
  }
  console.warn("Parley: server error", frame.code, frame.message);
}

const handlers = {
  "session.ready": onSessionReady,
  "message.new": (frame) => {
    noteDeliveredElsewhere(frame);
    onChange(frame);
  },
  "message.edit": onChange,
  "message.delete": onChange,
  "message.ack": (frame) => frame.room === room.id && resolvePending(frame.client_msg_id, frame.message),
  "sync.batch": onSyncBatch,
  receipt: onReceipt,
  presence: onPresence,
  typing: onTyping,
  error: onError,
  "member.update": (frame) => frame.room === room.id && applyMemberUpdate(frame.member),
  "room.update": (frame) => applyRoomUpdate(frame.room),
  "room.added": (frame) => {
    addSidebarRoom(frame.room);
    if (frame.room.id !== room.id) return;
    if (state.removed) onReaddedToRoom(frame.room);
    else setRole(frame.room.role); // our role changed
  },
  "room.removed": (frame) => {
    if (frame.room === room.id) onRemovedFromRoom();
    else removeSidebarRoom(frame.room);
  },
};

function onFrame(frame) {
  state.unread.onFrame(frame);
  handlers[frame.type]?.(frame);
}

// ---------------------------------------------------------------------------------------------
// Start-up

function setUpScrolling() {
  let scheduled = false;
  ui.scroller.addEventListener(
    "scroll",
    () => {
      if (ui.scroller.scrollTop < NEAR_TOP_PX) loadOlder();
      if (isNearBottom()) ui.jump.hidden = true;
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(() => {
          scheduled = false;
          noteProgress(); // scrolling newer messages into view reads them
        });
      }
    },
    { passive: true },
  );
  ui.jump.addEventListener("click", scrollToBottom);
}

function setUpMessageActions() {
  ui.messages.addEventListener("click", onMessageAction);
  ui.deleteDialog.addEventListener("close", onDeleteDialogClosed);
  // Coming back to the tab reads what arrived meanwhile.
  document.addEventListener("visibilitychange", noteProgress);
  window.addEventListener("focus", noteProgress);
}

async function boot() {
  // History first, socket second: a live message then always lands after a known newest
  // page, and session.ready's numbers tell us exactly what to sync on top.
  if (!(await loadNewest()) || state.started) return;
  state.started = true;
  state.socket.start();
}

state.socket = new LiveSocket({ onFrame, onState: setBadge });
state.receipts = new ReceiptSender(state.socket);
state.unread = new UnreadBadges({ lists: [ui.sidebar], currentRoom: room.id });
paintAvatars();
// On narrow screens the sidebar is a horizontal strip: make sure the current room is in view.
ui.sidebar?.querySelector(".is-active")?.scrollIntoView({ block: "nearest", inline: "nearest" });
setUpComposer();
setUpScrolling();
setUpMessageActions();
setRole(state.role);
boot();
