// The three ways the page can be live (docs/protocol.md), behind one small interface that
// live.js's LiveSocket drives:
//
//   new Transport({ onReady(frame), onFrame(frame), onClose({ code }), resume, onPosition(id), boards })
//   open()        start connecting; onReady(session.ready) once the server follows our rooms
//   send(frame)   true if the frame went (or a REST request for it started), false to queue it
//   close()       stop, silently (no onClose)
//
// onClose({code}) is called at most once, when the transport died by itself; code 4401 means
// the credentials are gone (retrying cannot help).
//
// SSE and long-polling resume: `resume` is the position (transports/cursors.py: an SSE event's
// `id:`, a poll's `cursor`; the two are interchangeable) after the last frame the page was given,
// and onPosition(id) reports each new one once its frames were handed on. A transport opened with
// `resume` gets no session.ready (the server writes what was missed, then goes live): it calls
// onReady(null) once the server has accepted the stream, and live.js gives the page a
// session.ready of its own numbers (nothing to sync). If the server cannot resume (the position
// expired) it starts afresh with a real session.ready, which goes through onReady as usual.
//
//   WebSocketTransport  /ws/: frames both ways. It knows a silently dead socket by an
//                       application-level `ping` (answered by `pong`), sent only while a request
//                       waits for its answer or after a long silence, so idle sockets stay cheap.
//   SseTransport        GET /api/v1/events/ (EventSource) for the server's frames.
//   PollTransport       GET /api/v1/poll/?cursor= (long-polling) for the server's frames.
// With SSE and long-polling, the page's frames become REST requests (RestBridge), and their
// answers become the frames the socket would have sent (message.ack, sync.batch, error …), so
// the rest of the page cannot tell the difference. `boards` (ids): the boards the stream also
// follows (`?boards=`: their board.state, board.update, awareness and comments come on it, as on
// a socket that joined them); their updates and awareness go over REST too.
import { csrfToken } from "./api.js";

const CLOSE_UNAUTHENTICATED = 4401;
// No session.ready this long after opening (a proxy that swallows the handshake or buffers the
// stream): give up on this attempt.
const READY_TIMEOUT_MS = 15000;
// A request (send, edit, sync …) unanswered this long, with nothing at all heard since: ping.
const ANSWER_GRACE_MS = 3000;
// Nothing heard for this long: ping (the server says nothing to an idle socket).
const SILENCE_MS = 60000;
// A ping with nothing at all heard back for this long: the socket is dead.
const PONG_TIMEOUT_MS = 6000;
const WATCH_EVERY_MS = 1000;
// A long-poll waits up to 25 s on the server (TRANSPORT_POLL_WAIT_SECONDS): longer is a dead one.
const POLL_TIMEOUT_MS = 40000;
// Frames that expect no answer: sending them starts no wait for one.
const UNANSWERED = new Set(["heartbeat", "typing", "receipt", "ping", "board.awareness", "board.leave"]);

export function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws/`;
}

function parse(text) {
  try {
    const frame = JSON.parse(text);
    return frame && typeof frame.type === "string" ? frame : null;
  } catch {
    return null; // the server only sends JSON; ignore anything else rather than crash the page
  }
}

/** Test hooks (window.PARLEY_TEST_TIMINGS, set before the page's scripts run): shorter timings,
 * e.g. {websocketReadyTimeoutMs: 1000}. */
function timing(name, fallback) {
  const value = window.PARLEY_TEST_TIMINGS?.[name];
  return typeof value === "number" ? value : fallback;
}

class Base {
  constructor({ onReady = () => {}, onFrame = () => {}, onClose = () => {}, resume = null, onPosition = () => {}, boards = [] } = {}) {
    this.onReady = onReady;
    this.boards = boards; // SSE / long-poll: the boards to follow too
    this.onFrame = onFrame;
    this.onClose = onClose;
    this.resume = resume; // SSE / long-poll: the position to resume from (null: afresh)
    this.onPosition = onPosition;
    this.ready = false;
    this.closed = false;
    this.readyTimer = null;
  }

  /** The query's `boards=` part ("" for none), to join with ? or &. */
  boardsQuery() {
    return this.boards.length ? `boards=${encodeURIComponent(this.boards.join(","))}` : "";
  }

  /** A resumed stream was accepted: ready, without a session.ready of the server's. */
  resumed() {
    if (this.closed || this.ready) return;
    this.ready = true;
    clearTimeout(this.readyTimer);
    this.onReady(null);
  }

  startReadyTimer() {
    const wait = timing(`${this.kind}ReadyTimeoutMs`, READY_TIMEOUT_MS);
    this.readyTimer = setTimeout(() => !this.ready && this.die(1006), wait);
  }

  /** A frame from the server: session.ready, session.revoked, or one for the page; `position`:
   * the resume position after it (SSE), reported once the frame was handed on. */
  deliver(frame, position = null) {
    if (this.closed) return;
    if (frame.type === "session.ready") {
      this.ready = true;
      clearTimeout(this.readyTimer);
      this.onReady(frame);
    } else if (frame.type === "session.revoked") {
      this.die(CLOSE_UNAUTHENTICATED); // the credentials are gone: a new request gets 401
      return;
    } else if (frame.type !== "pong") {
      this.onFrame(frame);
    }
    if (position && !this.closed) this.onPosition(position);
  }

  /** The transport failed: stop it and tell the connection once. */
  die(code) {
    if (this.closed) return;
    this.close();
    this.onClose({ code });
  }

  close() {
    this.closed = true;
    clearTimeout(this.readyTimer);
  }
}

export class WebSocketTransport extends Base {
  kind = "websocket";

  open() {
    const ws = new WebSocket(socketUrl());
    this.ws = ws;
    this.heard();
    ws.addEventListener("message", (event) => {
      if (this.closed) return;
      this.heard();
      const frame = parse(event.data);
      if (frame) this.deliver(frame);
    });
    ws.addEventListener("close", (event) => this.die(event.code));
    this.startReadyTimer();
    this.watch = setInterval(() => this.check(Date.now()), WATCH_EVERY_MS);
  }

  /** Something arrived (at `now`): the socket is alive, and nothing sent before waits any more. */
  heard(now = Date.now()) {
    this.lastHeard = now;
    this.awaiting = false;
    this.pingSentAt = 0; // any frame at all answers a ping
  }

  send(frame) {
    if (this.closed || !this.ready || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    if (!UNANSWERED.has(frame.type) && !this.awaiting) {
      this.awaiting = true; // a request went: until anything arrives, we wait for its answer
      this.waitingSince = Date.now();
    }
    return true;
  }

  /** Is the socket still alive? Ping when it matters, and drop it when the ping goes unanswered. */
  check(now) {
    if (this.closed || !this.ready) return;
    if (this.pingSentAt) {
      // Nothing at all arrived since the ping: the socket is silently dead (no close will come).
      if (now - this.pingSentAt >= timing("pongTimeoutMs", PONG_TIMEOUT_MS)) this.die(1006);
      return;
    }
    const waiting = this.awaiting && now - this.waitingSince >= timing("answerGraceMs", ANSWER_GRACE_MS);
    const silent = now - this.lastHeard >= timing("silenceMs", SILENCE_MS);
    if ((waiting || silent) && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send('{"type":"ping"}');
      this.pingSentAt = now;
    }
  }

  close() {
    super.close();
    clearInterval(this.watch);
    const ws = this.ws;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }
}

export class SseTransport extends Base {
  kind = "sse";

  constructor(handlers) {
    super(handlers);
    // Answers to REST requests reach the page even after this transport closed (an ack is an ack).
    this.rest = new RestBridge({ deliver: (frame) => this.onFrame(frame), onDead: () => this.die(1006) });
  }

  open() {
    // A reconnection resumes from the id of the last event handed on (`resume`), sent as
    // `?last_event_id=`, which the server reads as the Last-Event-ID header: the browser's own
    // retry (which sends that header) is not used, as we close on the first error and reconnect
    // with our back-off, and a new EventSource cannot be given the header.
    const params = [this.resume ? `last_event_id=${encodeURIComponent(this.resume)}` : "", this.boardsQuery()].filter(Boolean);
    const source = new EventSource(`/api/v1/events/${params.length ? `?${params.join("&")}` : ""}`);
    this.source = source;
    // The server answered 200 text/event-stream: a resumed stream is live (the first frames, if
    // any, are what was missed; a position it cannot resume starts with session.ready instead).
    source.addEventListener("open", () => this.resume && this.resumed());
    source.addEventListener("message", (event) => {
      const frame = parse(event.data);
      // lastEventId: this event's `id:`, or the previous one's when it has none.
      if (frame) this.deliver(frame, event.lastEventId || null);
    });
    source.addEventListener("error", () => this.die(1006));
    this.startReadyTimer();
  }

  send(frame) {
    return !this.closed && this.ready && this.rest.send(frame);
  }

  close() {
    super.close();
    this.source?.close();
  }
}

export class PollTransport extends Base {
  kind = "poll";

  constructor(handlers) {
    super(handlers);
    // Answers to REST requests reach the page even after this transport closed (an ack is an ack).
    this.rest = new RestBridge({ deliver: (frame) => this.onFrame(frame), onDead: () => this.die(1006) });
  }

  open() {
    this.startReadyTimer();
    if (this.resume) this.checkResumed();
    this.loop();
  }

  /** A resumed poll may wait 25 s for something to happen: whether the server takes us (the
   * session is valid and it answers) is asked of /api/v1/me/ meanwhile. */
  async checkResumed() {
    let response;
    try {
      response = await fetch("/api/v1/me/", { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" });
    } catch {
      return; // the poll itself fails too, and says so
    }
    if (this.closed || this.ready) return;
    if (response.status === 401) this.die(CLOSE_UNAUTHENTICATED);
    else if (response.ok) this.resumed();
  }

  async loop() {
    let cursor = this.resume;
    while (!this.closed) {
      const controller = new AbortController();
      this.controller = controller;
      const timer = setTimeout(() => controller.abort(), timing("pollTimeoutMs", POLL_TIMEOUT_MS));
      let body;
      try {
        // The same boards with every poll (another list resumes from PostgreSQL).
        const params = [cursor === null ? "" : `cursor=${encodeURIComponent(cursor)}`, this.boardsQuery()].filter(Boolean);
        const url = `/api/v1/poll/${params.length ? `?${params.join("&")}` : ""}`;
        const response = await fetch(url, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          signal: controller.signal,
        });
        if (response.status === 401) return this.die(CLOSE_UNAUTHENTICATED);
        if (response.status === 400 && cursor !== null) this.onPosition(null); // a cursor it refuses
        if (!response.ok) return this.die(1011); // reconnect with back-off
        body = await response.json();
      } catch {
        return this.die(1006); // network gone, or the poll outlived any the server makes
      } finally {
        clearTimeout(timer);
      }
      if (this.closed) return;
      const events = (body.events || []).filter((frame) => frame && typeof frame.type === "string");
      // A resumed poll that answers before /me/ did: the server took the cursor (else its
      // answer starts with session.ready).
      if (!this.ready && cursor !== null && events[0]?.type !== "session.ready") this.resumed();
      for (const frame of events) this.deliver(frame);
      if (this.closed) return;
      cursor = body.cursor ?? cursor;
      if (cursor !== null) this.onPosition(cursor);
    }
  }

  send(frame) {
    return !this.closed && this.ready && this.rest.send(frame);
  }

  close() {
    super.close();
    this.controller?.abort();
  }
}

const roomPath = (room, suffix = "") => `/api/v1/rooms/${encodeURIComponent(room)}/${suffix}`;
const boardPath = (board, suffix = "") => `/api/v1/boards/${encodeURIComponent(board)}/${suffix}`;
// Board updates over REST go one at a time per board, in the order sent (as the socket answers
// them), across transports too: board id -> the promise of its last request.
const boardQueues = new Map();
// Awareness over REST: one request at a time per board and session, and of the states given
// meanwhile only the latest goes next (an older cursor never overtakes a newer one).
const awarenessSlots = new Map(); // "board session" -> {next: body or null}

/**
 * The page's frames as REST requests (docs/protocol.md: in SSE/poll mode, writes go over REST),
 * and the answers as the frames the socket would have sent. A request that fails for want of a
 * network means the connection is gone too: onDead() (the page reconnects, then resends what is
 * still pending, as after a socket drop).
 */
export class RestBridge {
  constructor({ deliver, onDead }) {
    this.deliver = deliver;
    this.onDead = onDead;
  }

  send(frame) {
    const room = typeof frame.room === "string" ? frame.room : null;
    switch (frame.type) {
      case "heartbeat":
        return true; // an open stream, or a poller that keeps polling, is the server's liveness
      case "message.send":
        if (!room) return false;
        this.#request("POST", roomPath(room, "messages/"), { content: frame.content, client_msg_id: frame.client_msg_id, ...(frame.reply_to ? { reply_to: frame.reply_to } : {}), ...(frame.attachments ? { attachments: frame.attachments } : {}) }, frame.client_msg_id)
          .then((message) => message && this.#ack("message.ack", room, message));
        return true;
      case "reaction.add":
      case "reaction.remove": {
        if (!room || typeof frame.id !== "string" || typeof frame.emoji !== "string") return false;
        const url = roomPath(room, `messages/${encodeURIComponent(frame.id)}/reactions/`);
        const request = frame.type === "reaction.add"
          ? this.#request("POST", url, { emoji: frame.emoji }, frame.id)
          : this.#request("DELETE", `${url}?${new URLSearchParams({ emoji: frame.emoji })}`, undefined, frame.id);
        request.then((message) => message && this.#ack("reaction.ack", room, message));
        return true;
      }
      case "message.edit":
      case "message.delete": {
        if (!room || typeof frame.id !== "string") return false;
        const url = roomPath(room, `messages/${encodeURIComponent(frame.id)}/`);
        const request = frame.type === "message.edit"
          ? this.#request("PATCH", url, { content: frame.content }, frame.id)
          : this.#request("DELETE", url, undefined, frame.id);
        request.then((message) => message && this.#ack(`${frame.type}.ack`, room, message));
        return true;
      }
      case "receipt": {
        if (!room) return false;
        const marks = {};
        if ("delivered_sequence" in frame) marks.delivered_sequence = frame.delivered_sequence;
        if ("read_sequence" in frame) marks.read_sequence = frame.read_sequence;
        this.#request("POST", roomPath(room, "receipts/"), marks, null);
        return true;
      }
      case "typing":
        if (!room) return false;
        this.#request("POST", roomPath(room, "typing/"), undefined, null); // 204; over 2 a second dropped
        return true;
      case "sync":
        if (!room) return false;
        this.#sync(room, frame.after_sequence, frame.limit);
        return true;
      case "board.update":
        return this.#boardUpdate(frame);
      case "board.sync":
        if (typeof frame.board !== "string") return false;
        this.#boardSync(frame.board, frame.after_sequence, frame.limit);
        return true;
      case "board.join":
        // The stream sends a board's state itself when it starts following it (a fresh stream,
        // or one that resumes without it); this is a join the page asks for on its own (its
        // document was thrown away): the whole state, as board.state.
        if (typeof frame.board !== "string") return false;
        this.#boardState(frame.board);
        return true;
      case "board.awareness":
      case "board.leave":
        // Ephemeral: no answer is waited for, and a refusal (e.g. rate_limited) is not worth telling.
        if (typeof frame.board !== "string" || typeof frame.session !== "string") return false;
        if (frame.type === "board.awareness") this.#boardAwareness(frame.board, { session: frame.session, state: frame.state ?? null });
        // keepalive: a leave sent as the page goes away still reaches the server.
        else this.#fetch("POST", boardPath(frame.board, "awareness/"), { session: frame.session, state: null }, { keepalive: true });
        return true;
      default:
        // History is read over REST by the page itself; simulations are not bridged (yet): not
        // sent, so the caller keeps or drops the frame.
        return false;
    }
  }

  #boardUpdate(frame) {
    const board = frame.board;
    if (typeof board !== "string" || typeof frame.client_update_id !== "string") return false;
    const body = { update: frame.update, client_update_id: frame.client_update_id };
    const next = (boardQueues.get(board) || Promise.resolve())
      .then(() => this.#request("POST", boardPath(board, "updates/"), body, frame.client_update_id))
      .then((ack) => ack && this.deliver({ type: "board.update.ack", board, client_update_id: ack.client_update_id, sequence: ack.sequence }))
      .catch((error) => console.warn("Parley: board update", error));
    boardQueues.set(board, next);
    next.then(() => boardQueues.get(board) === next && boardQueues.delete(board));
    return true;
  }

  async #boardAwareness(board, body) {
    const key = `${board} ${body.session}`;
    const slot = awarenessSlots.get(key);
    if (slot) {
      slot.next = body; // goes when the one in flight is answered (unless a newer one comes first)
      return;
    }
    const mine = { next: body };
    awarenessSlots.set(key, mine);
    try {
      while (mine.next) {
        const next = mine.next;
        mine.next = null;
        await this.#fetch("POST", boardPath(board, "awareness/"), next);
      }
    } finally {
      awarenessSlots.delete(key);
    }
  }

  async #boardSync(board, after, limit) {
    const params = new URLSearchParams({ after_sequence: String(after ?? 0) });
    if (limit) params.set("limit", String(limit));
    const answer = await this.#fetch("GET", `${boardPath(board, "updates/")}?${params}`);
    if (answer?.ok) {
      const page = answer.data;
      this.deliver({ type: "board.updates", board, updates: page.updates, has_more: page.has_more, last_sequence: page.last_sequence });
    } else if (answer?.code === "compacted") {
      this.#boardState(board); // that part of the log is in a snapshot: the whole state (as the socket does)
    } else if (answer) {
      this.#fail(answer, null, { board });
    }
  }

  async #boardState(board) {
    const answer = await this.#fetch("GET", boardPath(board, "state/"));
    if (answer?.ok) {
      const state = answer.data;
      this.deliver({ type: "board.state", board, sequence: state.sequence, update: state.update, awareness: [] });
    } else if (answer) {
      this.#fail(answer, null, { board });
    }
  }

  #ack(type, room, message) {
    this.deliver({ type, room, id: message.id, client_msg_id: message.client_msg_id, message });
  }

  async #sync(room, after, limit) {
    let cursor = after;
    for (;;) {
      const params = new URLSearchParams({ after_sequence: String(cursor) });
      if (limit) params.set("limit", String(limit));
      const page = await this.#request("GET", `${roomPath(room, "changes/")}?${params}`, undefined, null);
      if (!page) return; // the error went to the page as an error frame (or the connection died)
      this.deliver({ type: "sync.batch", room, events: page.results, has_more: page.has_more, last_sequence: page.last_sequence });
      if (!page.has_more) return;
      cursor = page.last_sequence;
    }
  }

  /** The JSON answer, or null after delivering an `error` frame about `ref` (or losing the network). */
  async #request(method, url, body, ref) {
    const answer = await this.#fetch(method, url, body);
    if (answer?.ok) return answer.data;
    if (answer) this.#fail(answer, ref);
    return null;
  }

  /** {ok, data, code}: the answer (`code`: the API's error code, if it gave one), or null when
   * the network is gone (then onDead: what is pending goes again after reconnecting). */
  async #fetch(method, url, body, { keepalive = false } = {}) {
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        keepalive,
        headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      if (!keepalive) this.onDead(); // (a page going away loses its network on purpose)
      return null;
    }
    const data = response.status === 204 ? {} : await response.json().catch(() => null);
    if (response.ok && data) return { ok: true, data };
    const error = data?.error && typeof data.error.code === "string" ? data.error : null;
    return { ok: false, error, code: error?.code ?? null };
  }

  /** The `error` frame the socket would have sent for a refused request. */
  #fail(answer, ref, extra = {}) {
    if (answer.error) {
      this.deliver({ type: "error", ...answer.error, ref, ...extra });
    } else {
      // Not the API's answer (a proxy's 502, an HTML page): try again in a moment.
      this.deliver({ type: "error", code: "unavailable", message: "Parley is briefly unavailable; please retry.", retry_after_ms: 2000, ref, ...extra });
    }
  }
}
