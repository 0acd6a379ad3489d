// The room page: history over REST, live events over the one WebSocket (docs/protocol.md).
//
// Invariants this file keeps:
//   * every message is shown at most once (state.shown is keyed by sequence) and the list is
//     always in sequence order, whatever order REST pages and socket frames arrive in;
//   * everything from state.lowest up to state.contiguous is on screen, so "what did I miss?"
//     is always `?after_sequence=<contiguous>`;
//   * user content only reaches the DOM through textContent (see dom.js `el`).
import { avatar, el, insertSorted, paintAvatars, readJsonScript, roleBadge, roomIcon, ROLE_LABELS } from "./dom.js";
import { getJson, HttpError } from "./api.js";
import { LiveSocket } from "./live.js";

const MAX_LENGTH = 4000; // docs/protocol.md: content is 1–4,000 characters
const PAGE_SIZE = 50;
const SYNC_PAGE_SIZE = 100; // the server's maximum page; catching up wants few round trips
const GROUP_WINDOW_MS = 5 * 60 * 1000; // consecutive messages by one person within this are grouped
const NEAR_TOP_PX = 200;
const NEAR_BOTTOM_PX = 120;
const SYNC_RETRY_MS = 5000;

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
};

const state = {
  shown: new Map(), // sequence -> <li>
  lowest: null, // lowest sequence on screen (scroll-back continues below it)
  contiguous: 0, // every sequence from `lowest` up to this one is on screen
  reachedBeginning: false,
  loadingOlder: false,
  syncing: null, // the running catch-up, so only one runs at a time
  syncAgain: false, // something asked for a catch-up while one was running
  syncRetry: null,
  pending: new Map(), // client_msg_id -> {id, content, status, error, code, node}
  role: room.role,
  removed: false,
  socket: null,
};

// ---------------------------------------------------------------------------------------------
// Formatting

const pad = (n) => String(n).padStart(2, "0");
const hhmm = (date) => `${pad(date.getHours())}:${pad(date.getMinutes())}`;

function dayLabel(date) {
  const today = new Date();
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (date.toDateString() === today.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

/** Python counts code points, JavaScript counts UTF-16 units: count like the server does. */
const charCount = (text) => [...text].length;

// ---------------------------------------------------------------------------------------------
// REST history

function fetchPage(params) {
  return getJson(`/api/v1/rooms/${encodeURIComponent(room.id)}/messages/?${new URLSearchParams(params)}`);
}

/** 403/404 on our own room's history means we were removed while we weren't looking. */
function handleHistoryError(error) {
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

function renderMessage(message) {
  const created = new Date(message.created_at);
  const sender = message.sender; // null if the account was deleted
  return el(
    "li",
    {
      class: sender && sender.id === me.id ? "msg msg-mine" : "msg",
      "data-sequence": message.sequence,
      "data-id": message.id,
      "data-sender": sender ? sender.id : "",
      "data-time": created.getTime(),
      "data-day": dayLabel(created),
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
      message.deleted
        ? el("div", { class: "msg-body msg-deleted" }, "This message was deleted.")
        : el("div", { class: "msg-body" }, message.content, message.edited_at && editedMark(message.edited_at)),
    ),
  );
}

function editedMark(editedAt) {
  return el("span", { class: "msg-edited", title: `Edited ${new Date(editedAt).toLocaleString()}` }, " (edited)");
}

/** An edit or deletion of a message already on screen: redraw it in place. */
function replaceMessage(message) {
  const old = state.shown.get(message.sequence);
  if (!old) return; // not loaded yet: it will arrive in its latest state when it is
  const node = renderMessage(message);
  old.replaceWith(node);
  state.shown.set(message.sequence, node);
  applyGrouping(node);
  applyGrouping(node.nextElementSibling);
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

/** Put one message on screen in sequence order; false if it is already shown. */
function insertMessage(message) {
  const sequence = message.sequence;
  if (state.shown.has(sequence)) return false;
  const node = renderMessage(message);
  ui.messages.insertBefore(node, rowAfter(sequence));
  state.shown.set(sequence, node);
  applyGrouping(node);
  applyGrouping(node.nextElementSibling);
  if (state.lowest === null || sequence < state.lowest) state.lowest = sequence;
  while (state.shown.has(state.contiguous + 1)) state.contiguous += 1;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Scrolling

const distanceFromBottom = () => ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight;
const isNearBottom = () => distanceFromBottom() < NEAR_BOTTOM_PX;

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  ui.jump.hidden = true;
}

/** Show new messages; follow them down only if the reader was already at the bottom. */
function showMessages(messages, { follow = false } = {}) {
  const wasAtBottom = isNearBottom();
  let added = 0;
  for (const message of messages) if (insertMessage(message)) added += 1;
  if (!added) return;
  if (wasAtBottom || follow) scrollToBottom();
  else ui.jump.hidden = false;
}

/**
 * Insert older messages (and update the status line above them) without moving what the
 * reader is looking at: everything below stays the same distance from the bottom.
 */
function prependKeepingPosition(messages, status) {
  const fromBottom = ui.scroller.scrollHeight - ui.scroller.scrollTop;
  setHistoryStatus(status);
  for (const message of messages) insertMessage(message);
  ui.scroller.scrollTop = ui.scroller.scrollHeight - fromBottom;
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
  setHistoryStatus("beginning");
}

// ---------------------------------------------------------------------------------------------
// Loading history: newest page, scroll-back, and catching up after a gap or reconnect

async function loadNewest() {
  setHistoryStatus("loading");
  try {
    const page = await fetchPage({ limit: PAGE_SIZE });
    // Newest first from the server; inserting oldest first makes every insert an append.
    for (const message of [...page.results].reverse()) insertMessage(message);
    // The newest page is contiguous by construction, even though sequence 1 is not on screen.
    state.contiguous = Math.max(state.contiguous, page.results.length ? page.results[0].sequence : 0);
    if (page.has_more) setHistoryStatus("idle");
    else markBeginning();
    scrollToBottom();
    fillViewport();
    return true;
  } catch (error) {
    if (!handleHistoryError(error)) setHistoryStatus("error");
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
    state.reachedBeginning = !more;
    prependKeepingPosition(page.results, more ? "idle" : "beginning");
    ok = true;
  } catch (error) {
    if (!handleHistoryError(error)) prependKeepingPosition([], "error");
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
 * Fetch everything after `contiguous`. Only one catch-up runs at a time; asking while one runs
 * makes it go round once more, so nothing that arrives meanwhile is missed.
 */
function catchUp() {
  if (state.syncing) {
    state.syncAgain = true;
    return state.syncing;
  }
  clearTimeout(state.syncRetry);
  state.syncing = (async () => {
    try {
      do {
        state.syncAgain = false;
        let hasMore = true;
        while (hasMore && !state.removed) {
          const page = await fetchPage({ after_sequence: state.contiguous, limit: SYNC_PAGE_SIZE });
          showMessages(page.results);
          // The page holds every message after `contiguous` up to its last one, so we are complete
          // up to there even if some numbers in between were not messages.
          const last = page.results.at(-1)?.sequence ?? state.contiguous;
          state.contiguous = Math.max(state.contiguous, last);
          while (state.shown.has(state.contiguous + 1)) state.contiguous += 1;
          hasMore = page.has_more && page.results.length > 0;
        }
      } while (state.syncAgain && !state.removed);
    } catch (error) {
      // Try again a little later; a reconnect (session.ready) also triggers a catch-up.
      if (!handleHistoryError(error)) state.syncRetry = setTimeout(catchUp, SYNC_RETRY_MS);
    } finally {
      state.syncing = null;
    }
  })();
  return state.syncing;
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
  const node = el(
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
  return node;
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

function failPending(entry, message, code) {
  entry.status = "failed";
  entry.error = message || "The message could not be sent.";
  entry.code = code || "";
  updatePendingRow(entry);
}

/** The server stored our message: swap the grey pending row for the real one. */
function resolvePending(clientMsgId, message) {
  const entry = state.pending.get(clientMsgId);
  if (!entry) return;
  state.pending.delete(clientMsgId);
  entry.node.remove();
  showMessages([message], { follow: true });
}

// ---------------------------------------------------------------------------------------------
// Composer

function showComposerError(text) {
  ui.composerError.textContent = text;
  ui.composerError.hidden = !text;
  ui.input.setAttribute("aria-invalid", text ? "true" : "false");
}

/** Messages as sent: trailing whitespace and leading blank lines dropped, indentation kept. */
const normalise = (text) => text.replace(/^(?:[ \t]*\n)+/, "").replace(/\s+$/, "");

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

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

function submitDraft() {
  if (ui.input.disabled) return;
  const content = normalise(ui.input.value);
  if (!content.trim()) return; // nothing to say: not an error, just nothing to send
  if (!validateDraft()) return;
  queueSend(content);
  ui.input.value = "";
  autosize();
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
    autosize();
    validateDraft();
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
  state.role = role;
  if (ui.myRole) ui.myRole.textContent = ROLE_LABELS[role] || role;
  refreshMembershipControls();
  refreshComposer();
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
  // No more events arrive for this room, so what's left of the side panel would only go stale.
  ui.memberList.querySelector(`[data-user-id="${CSS.escape(String(me.id))}"]`)?.remove();
  ui.memberCount.textContent = String(ui.memberList.children.length);
  if (ui.myRole) ui.myRole.textContent = "not a member";
  refreshMembershipControls();
  refreshComposer();
}

function onReaddedToRoom(role) {
  state.removed = false;
  showNotice("");
  setRole(role);
  catchUp();
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
}

function removeSidebarRoom(id) {
  if (id !== room.id) byRoomId(ui.sidebar, id)?.remove();
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
  return el(
    "li",
    { class: "member", "data-user-id": user.id, "data-username": user.username },
    avatar(user, "avatar-sm"),
    name,
    roleBadge(role),
  );
}

function applyMemberUpdate(member) {
  const { user, role } = member;
  const existing = ui.memberList.querySelector(`[data-user-id="${CSS.escape(String(user.id))}"]`);
  if (role === null) existing?.remove();
  else if (existing) existing.querySelector(".role-badge").replaceWith(roleBadge(role));
  else insertSorted(ui.memberList, renderMember(user, role), (node) => node.dataset.username);
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
  if (latest === undefined) {
    onRemovedFromRoom();
    return;
  }
  flushPending();
  if (latest > state.contiguous) catchUp();
}

function onMessageNew(frame) {
  if (frame.room !== room.id) return; // other rooms' traffic is not shown on this page
  const message = frame.message;
  const gap = message.sequence > state.contiguous + 1;
  if (message.sender?.id === me.id && state.pending.has(message.client_msg_id)) {
    resolvePending(message.client_msg_id, message); // sent from this tab, its ack not here yet
  } else {
    showMessages([message]);
  }
  if (gap) catchUp(); // frames before this one were lost: read them from the database
}

const handlers = {
  "session.ready": onSessionReady,
  "message.new": onMessageNew,
  "message.ack": (frame) => frame.room === room.id && resolvePending(frame.client_msg_id, frame.message),
  error: (frame) => {
    const entry = frame.ref ? state.pending.get(frame.ref) : null;
    if (entry) failPending(entry, frame.message, frame.code);
    else console.warn("Parley: server error", frame.code, frame.message);
  },
  // Edits and deletions (announced by newer servers) redraw a row; they add nothing to the list.
  "message.edit": (frame) => frame.room === room.id && replaceMessage(frame.message),
  "message.delete": (frame) => frame.room === room.id && replaceMessage(frame.message),
  "member.update": (frame) => frame.room === room.id && applyMemberUpdate(frame.member),
  "room.update": (frame) => applyRoomUpdate(frame.room),
  "room.added": (frame) => {
    addSidebarRoom(frame.room);
    if (frame.room.id !== room.id) return;
    if (state.removed) onReaddedToRoom(frame.room.role);
    else setRole(frame.room.role); // our role changed
  },
  "room.removed": (frame) => {
    if (frame.room === room.id) onRemovedFromRoom();
    else removeSidebarRoom(frame.room);
  },
};

function onFrame(frame) {
  handlers[frame.type]?.(frame);
}

// ---------------------------------------------------------------------------------------------
// Start-up

function setUpScrolling() {
  ui.scroller.addEventListener(
    "scroll",
    () => {
      if (ui.scroller.scrollTop < NEAR_TOP_PX) loadOlder();
      if (isNearBottom()) ui.jump.hidden = true;
    },
    { passive: true },
  );
  ui.jump.addEventListener("click", scrollToBottom);
}

async function boot() {
  // History first, socket second: a live message then always lands after a known newest
  // page, and session.ready's sequence numbers tell us exactly what to fetch on top.
  if (!(await loadNewest()) || state.socket) return;
  state.socket = new LiveSocket({ onFrame, onState: setBadge });
  state.socket.start();
}

paintAvatars();
// On narrow screens the sidebar is a horizontal strip: make sure the current room is in view.
ui.sidebar?.querySelector(".is-active")?.scrollIntoView({ block: "nearest", inline: "nearest" });
setUpComposer();
setUpScrolling();
setRole(state.role);
boot();
