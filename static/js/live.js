// The page's live connection (docs/protocol.md), kept open across network trouble.
//
// It speaks WebSocket (/ws/). Pages that can live without the socket's extras (chat, home) pass
// `fallback: true`: when the socket cannot be opened while the server itself answers over HTTP (a
// proxy that blocks WebSocket), it falls back to Server-Sent Events, and if those cannot be
// opened either, to long-polling (transports.js: the page's frames then go over REST). Every few
// minutes it tries the better transport again in the background and moves back up once one
// reaches session.ready.
//
// After any drop we reconnect with exponential backoff and *full* jitter: a server restart drops
// every client at once, and random delays spread their reconnects out instead of hammering the
// server in synchronised waves.
//
// The state shown is always true: the browser's `offline` event drops the connection at once
// ("offline": no retries until `online`, then at once), and a socket that dies silently is known
// by its unanswered ping (transports.js) within about 10 s of a send.
//
// While connected over the socket, it also heartbeats every 30 s ({"type": "heartbeat",
// "active"}): the server counts a socket alive for 60 s after its last beat, and `active` (did
// the person touch the page since the previous beat?) is what tells "online" from "away".
//
// Over SSE and long-polling a reconnection resumes from the position of the last frame the page
// was given (the SSE `id:` / the poll's `cursor`, transports.js): the server writes exactly what
// was missed, and the page gets a session.ready of the numbers it already has (nothing to sync).
//
// One connection per browser (shared-connection.js): pages that share (chat, home) elect one
// leader tab per user, whose Connection is the browser's only one; the other tabs send and
// receive through it. LiveSocket is that choice; Connection is the connection itself.
import { PollTransport, SseTransport, WebSocketTransport } from "./transports.js";
import { ReadyTracker } from "./shared-routing.js";
import { ACTIVITY_EVENTS, SharedConnection, shareKey } from "./shared-connection.js";

export { socketUrl } from "./transports.js";

const BASE_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
// Tests set window.PARLEY_TEST_FAST_RECONNECT (before the page's scripts run) to cap the wait.
const TEST_MAX_DELAY_MS = 1000;
// A connection that stayed up this long was a real one: the next failure starts backing off anew.
const STABLE_AFTER_MS = 10000;
const HEARTBEAT_MS = 30000;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_TRY_AGAIN = 1013; // the server is there but busy: not a blocked transport
// Failed attempts (before session.ready, the server answering over HTTP meanwhile) after which
// the next transport down the list is tried.
const FALLBACK_AFTER = { websocket: 3, sse: 2, poll: Infinity };
// In a fallback mode, try the better transports again after this long (doubling up to the cap).
const UPGRADE_AFTER_MS = 3 * 60 * 1000;
const UPGRADE_MAX_MS = 30 * 60 * 1000;
// Which transport worked last in this tab (sessionStorage), so the next page starts there rather
// than finding the socket blocked again; forgotten after this long, or once the socket works.
const REMEMBER_KEY = "parley.live.transport";
const REMEMBER_MS = 10 * 60 * 1000;
const TRANSPORTS = { websocket: WebSocketTransport, sse: SseTransport, poll: PollTransport };

/** Full jitter: a uniformly random delay between 0 and min(cap, base * 2^attempt). */
export function backoffDelay(attempt) {
  const cap = window.PARLEY_TEST_FAST_RECONNECT ? TEST_MAX_DELAY_MS : MAX_DELAY_MS;
  const ceiling = Math.min(cap, BASE_DELAY_MS * 2 ** attempt);
  return Math.random() * ceiling;
}

/** Does the server answer plain HTTP (any status)? Tells a blocked transport from a server that is down. */
async function serverAnswers() {
  try {
    await fetch("/api/v1/me/", { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" });
    return true;
  } catch {
    return false;
  }
}

function recalled(ladder) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(REMEMBER_KEY) || "null");
    if (saved && Date.now() - saved.at < REMEMBER_MS) return Math.max(0, ladder.indexOf(saved.kind));
  } catch {
    // no storage (private mode, a sandboxed frame): start from the socket
  }
  return 0;
}

function remember(kind) {
  try {
    if (kind === "websocket") sessionStorage.removeItem(REMEMBER_KEY);
    else sessionStorage.setItem(REMEMBER_KEY, JSON.stringify({ kind, at: Date.now() }));
  } catch {
    // as above
  }
}

/**
 * The page's live connection. Callbacks:
 *   onFrame(frame)             every server frame, including session.ready (never pong)
 *   onState(state, transport)  state: "connecting" | "connected" | "reconnecting" | "offline" |
 *                              "signed-out"; transport: "websocket" | "sse" | "poll"
 * "connected" means session.ready arrived: the server follows our rooms.
 * fallback: may fall back to SSE and long-polling (else WebSocket only, e.g. for boards).
 * share: share one connection with this browser's other tabs of the same user (default: with
 *   `fallback`; the board page keeps a connection of its own, see docs/protocol.md).
 * boards: board ids an SSE stream or a long-poll follows too (`?boards=`; the board page's one).
 */
export class LiveSocket {
  constructor({ onFrame = () => {}, onState = () => {}, fallback = false, share = fallback, boards = [] } = {}) {
    const key = share ? shareKey() : null;
    this.impl = key
      ? new SharedConnection({ key, onFrame, onState, makeConnection: (handlers) => new Connection({ fallback, boards, ...handlers }) })
      : new Connection({ onFrame, onState, fallback, boards });
  }

  get kind() {
    return this.impl.kind;
  }

  get state() {
    return this.impl.state;
  }

  get ready() {
    return this.impl.ready;
  }

  start() {
    this.impl.start();
  }

  stop() {
    this.impl.stop();
  }

  /** Send a frame if the session is ready; returns false so the caller can queue it instead. */
  send(frame) {
    return this.impl.send(frame);
  }

  /** The boards an SSE stream or a long-poll follows too (Connection.setBoards). */
  setBoards(boards) {
    this.impl.setBoards(boards);
  }
}

/**
 * A reconnecting live connection (callbacks as LiveSocket's). start({listen: false}) leaves the
 * window's events (pagehide, offline, activity …) to the caller (shared-connection.js).
 */
export class Connection {
  constructor({ onFrame = () => {}, onState = () => {}, fallback = false, boards = [] } = {}) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.boards = boards;
    this.tracker = new ReadyTracker(); // session.ready brought up to date (resumes, other tabs)
    this.position = null; // SSE / long-poll: where to resume (transports.js)
    this.ladder = fallback ? ["websocket", "sse", "poll"] : ["websocket"];
    this.rung = fallback ? recalled(this.ladder) : 0; // index into ladder: the transport in use
    this.strikes = 0; // failed attempts on this rung while the server answered HTTP
    this.transport = null;
    this.probe = null; // a better transport being tried in the background
    this.ready = false;
    this.readyAt = 0;
    this.attempt = 0;
    this.timer = null;
    this.upgradeTimer = null;
    this.upgradeDelay = UPGRADE_AFTER_MS;
    this.heartbeat = null;
    this.active = true; // the page was just opened: that counts as activity
    this.hasConnected = false;
    this.stopped = false;
    this.offline = false;
    this.state = null;
  }

  /** The transport in use (or being tried): "websocket" | "sse" | "poll". */
  get kind() {
    return this.ladder[this.rung];
  }

  start({ listen = true } = {}) {
    this.stopped = false;
    if (listen) this.#listen();
    this.connect();
  }

  #listen() {
    // Closing on pagehide keeps the badge from flashing "Reconnecting…" while navigating away.
    window.addEventListener("pagehide", () => this.stop());
    window.addEventListener("pageshow", (event) => event.persisted && this.restart());
    window.addEventListener("offline", () => this.goOffline());
    // Coming back online is the best moment to retry; don't sit out the rest of a long backoff.
    window.addEventListener("online", () => this.goOnline());
    const markActive = () => {
      this.active = true;
    };
    for (const type of ACTIVITY_EVENTS) window.addEventListener(type, markActive, { passive: true, capture: true });
  }

  stop() {
    this.stopped = true;
    this.clearTimer();
    this.stopUpgrade();
    this.#drop();
  }

  restart() {
    this.stop();
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  /** Send a frame if the session is ready; returns false so the caller can queue it instead. */
  send(frame) {
    if (!this.ready || !this.transport) return false;
    return this.transport.send(frame);
  }

  connect() {
    this.clearTimer();
    if (this.stopped) return;
    if (this.offline || navigator.onLine === false) {
      this.offline = true;
      this.#setState("offline");
      return; // `online` reconnects
    }
    this.#setState(this.hasConnected || this.attempt > 0 ? "reconnecting" : "connecting");
    const transport = this.#current();
    transport.open();
  }

  /**
   * The boards an SSE stream or a long-poll follows too (`?boards=`; a socket joins boards with
   * board.join instead: nothing changes then). A stream or poll in use is reopened at once from
   * its position with the new list: the server writes what it missed (nothing, usually) and each
   * new board's board.state, and the page gets a session.ready of its own numbers, as after any
   * resume.
   */
  setBoards(boards) {
    const list = [...new Set(boards)];
    if (list.length === this.boards.length && list.every((id) => this.boards.includes(id))) return;
    this.boards = list;
    const old = this.transport;
    if (!old || this.stopped || this.kind === "websocket") return;
    const transport = this.#current();
    old.close();
    transport.open();
  }

  /** Give up on the current connection at once and reconnect with backoff (as after a close). */
  dropConnection() {
    const transport = this.transport;
    if (transport) this.#onClose(transport, { code: 1006 });
  }

  goOffline() {
    this.offline = true;
    this.clearTimer();
    this.stopUpgrade();
    this.#drop();
    if (!this.stopped && this.state !== "signed-out") this.#setState("offline");
  }

  goOnline() {
    if (!this.offline) {
      // Waiting out a back-off: the network just came back, so this is the moment to retry.
      if (this.timer !== null && this.timer !== -1 && !this.stopped) {
        this.attempt = 0;
        this.connect();
      }
      return;
    }
    this.offline = false;
    if (this.stopped || this.state === "signed-out") return;
    this.attempt = 0;
    this.connect();
  }

  /** resume: the position to resume from (SSE / poll only; a probe for a better transport
   * starts afresh, as the one in use goes on delivering meanwhile). */
  /** A transport of the current kind, from the current position, made the page's transport. */
  #current() {
    const transport = this.#make(
      this.kind,
      {
        onReady: (frame) => this.#onReady(transport, frame),
        onClose: (event) => this.#onClose(transport, event),
      },
      this.position,
    );
    this.transport = transport;
    return transport;
  }

  #make(kind, { onReady, onClose }, resume = null) {
    const Transport = TRANSPORTS[kind];
    const transport = new Transport({
      onReady,
      onClose,
      onFrame: (frame) => !this.stopped && this.#emit(frame),
      resume: kind === "websocket" ? null : resume, // SSE ids and poll cursors are interchangeable
      boards: this.boards,
      onPosition: (position) => {
        if (transport === this.transport && !this.stopped) this.position = position;
      },
    });
    return transport;
  }

  #emit(frame) {
    this.tracker.note(frame);
    this.onFrame(frame);
  }

  #onReady(transport, frame) {
    if (transport !== this.transport || this.stopped) return;
    if (frame === null) {
      // A resumed stream (transports.js): the page gets a session.ready of what it has.
      const snapshot = this.tracker.snapshot();
      if (!snapshot) {
        this.position = null; // nothing to resume onto: start afresh
        this.dropConnection();
        return;
      }
      frame = { ...snapshot, resumed: true };
    }
    if (this.kind === "websocket") this.position = null;
    this.ready = true;
    this.readyAt = Date.now();
    this.hasConnected = true;
    this.strikes = 0;
    if (this.ladder.length > 1) remember(this.kind);
    this.#setState("connected");
    if (this.kind === "websocket") this.startHeartbeat();
    else this.scheduleUpgrade();
    this.#emit(frame);
  }

  #onClose(transport, { code }) {
    if (transport !== this.transport) return; // one we already gave up on
    const wasReady = this.ready;
    // A resume that failed before the server took it: if the server answers HTTP, it refused the
    // position (or the stream): the next attempt starts afresh (session.ready, then sync).
    const resumeFailed = !wasReady && Boolean(transport.resume);
    this.#drop();
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHENTICATED) {
      // The session is gone (signed out elsewhere, expired): retrying cannot help.
      this.position = null;
      this.stopUpgrade();
      this.#setState("signed-out");
      return;
    }
    if (this.offline || navigator.onLine === false) {
      this.goOffline();
      return;
    }
    if (this.readyAt && Date.now() - this.readyAt >= STABLE_AFTER_MS) this.attempt = 0;
    this.readyAt = 0;
    this.#setState("reconnecting");
    const blocked = !wasReady && code !== CLOSE_TRY_AGAIN && this.rung < this.ladder.length - 1;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => (blocked || resumeFailed ? this.#maybeFallBack(resumeFailed) : this.connect()), delay);
  }

  /** An attempt failed before session.ready: if the server answers HTTP, the transport is blocked
   * (or, for a resume, the position was refused: then it is tried afresh before counting). */
  async #maybeFallBack(resumeFailed = false) {
    this.timer = -1; // a retry is under way (see goOnline / goOffline)
    const answers = await serverAnswers();
    if (this.timer !== -1 || this.stopped || this.offline) return; // overtaken meanwhile
    this.timer = null;
    if (answers && resumeFailed) {
      this.position = null;
    } else if (answers && this.rung < this.ladder.length - 1) {
      this.strikes += 1;
      if (this.strikes >= FALLBACK_AFTER[this.kind]) {
        this.rung += 1;
        this.strikes = 0;
        this.attempt = 0;
      }
    }
    this.connect();
  }

  // Moving back up ---------------------------------------------------------------------------

  scheduleUpgrade() {
    this.stopUpgrade();
    if (this.rung === 0) return;
    const delay = window.PARLEY_TEST_UPGRADE_MS ?? this.upgradeDelay;
    this.upgradeTimer = setTimeout(() => this.#tryUpgrade(0), delay);
  }

  stopUpgrade() {
    if (this.upgradeTimer !== null) clearTimeout(this.upgradeTimer);
    this.upgradeTimer = null;
    this.probe?.close();
    this.probe = null;
  }

  /** Try the transport `rung` (better than the one in use) without leaving the current one. */
  #tryUpgrade(rung) {
    this.upgradeTimer = null;
    if (!this.ready || this.stopped || rung >= this.rung) return;
    const probe = this.#make(this.ladder[rung], {
      onReady: (frame) => {
        if (probe !== this.probe) return;
        this.probe = null;
        this.clearTimer(); // a reconnect of the old transport may be waiting
        this.upgradeDelay = UPGRADE_AFTER_MS;
        const old = this.transport;
        this.transport = probe;
        this.rung = rung;
        this.strikes = 0;
        this.attempt = 0;
        old?.close();
        this.#onReady(probe, frame); // the page syncs from session.ready as after a reconnect
      },
      onClose: () => {
        if (probe !== this.probe) return;
        this.probe = null;
        if (rung + 1 < this.rung) this.#tryUpgrade(rung + 1);
        else {
          this.upgradeDelay = Math.min(this.upgradeDelay * 2, UPGRADE_MAX_MS);
          this.scheduleUpgrade();
        }
      },
    });
    this.probe = probe;
    probe.open();
  }

  // Heartbeats (socket only: an SSE stream or a poller is its own liveness) ----------------------

  startHeartbeat() {
    this.stopHeartbeat();
    this.active = false; // connecting already told the server we are here
    this.heartbeat = setInterval(() => {
      if (this.send({ type: "heartbeat", active: this.active })) this.active = false;
    }, HEARTBEAT_MS);
  }

  stopHeartbeat() {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  clearTimer() {
    if (this.timer !== null && this.timer !== -1) clearTimeout(this.timer);
    this.timer = null;
  }

  #drop() {
    const transport = this.transport;
    this.transport = null;
    this.ready = false;
    this.stopHeartbeat();
    transport?.close();
  }

  #setState(state) {
    this.state = state;
    this.onState(state, this.kind);
  }
}
