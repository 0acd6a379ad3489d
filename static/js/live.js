// The page's one WebSocket to /ws/ (docs/protocol.md), kept open across network trouble.
//
// Browsers authenticate with the session cookie, so there is nothing to send on connect.
// After any close we reconnect with exponential backoff and *full* jitter: a server restart
// drops every client at once, and random delays spread their reconnects out instead of
// hammering the server in synchronised waves.
//
// While connected, the socket also heartbeats every 30 s ({"type": "heartbeat", "active"}): the
// server counts a socket alive for 60 s after its last beat, and `active` (did the person touch
// the page since the previous beat?) is what tells "online" from "away".

const BASE_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
// Tests set window.PARLEY_TEST_FAST_RECONNECT (before the page's scripts run) to cap the wait.
const TEST_MAX_DELAY_MS = 1000;
// A connection that stayed up this long was a real one: the next failure starts backing off anew.
const STABLE_AFTER_MS = 10000;
const HEARTBEAT_MS = 30000;
const CLOSE_UNAUTHENTICATED = 4401;
const ACTIVITY_EVENTS = ["keydown", "mousemove", "pointerdown", "wheel", "touchstart", "focus"];

export function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws/`;
}

/** Full jitter: a uniformly random delay between 0 and min(cap, base * 2^attempt). */
export function backoffDelay(attempt) {
  const cap = window.PARLEY_TEST_FAST_RECONNECT ? TEST_MAX_DELAY_MS : MAX_DELAY_MS;
  const ceiling = Math.min(cap, BASE_DELAY_MS * 2 ** attempt);
  return Math.random() * ceiling;
}

/**
 * A reconnecting socket. Callbacks:
 *   onFrame(frame)  every parsed server frame, including session.ready
 *   onState(state)  "connecting" | "connected" | "reconnecting" | "signed-out"
 * "connected" means session.ready arrived: the server has subscribed us to our rooms.
 */
export class LiveSocket {
  constructor({ onFrame = () => {}, onState = () => {} } = {}) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.ready = false;
    this.readyAt = 0;
    this.attempt = 0;
    this.timer = null;
    this.heartbeat = null;
    this.active = true; // the page was just opened: that counts as activity
    this.hasConnected = false;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    // Closing on pagehide keeps the badge from flashing "Reconnecting…" while navigating away.
    window.addEventListener("pagehide", () => this.stop());
    window.addEventListener("pageshow", (event) => event.persisted && this.restart());
    // Coming back online is the best moment to retry; don't sit out the rest of a long backoff.
    window.addEventListener("online", () => this.timer !== null && this.restart());
    // The browser knows the network is gone: say so now and start reconnecting, rather than
    // leaving a dead socket looking connected until TCP notices (a board queues edits meanwhile).
    window.addEventListener("offline", () => this.ws && this.dropConnection());
    const markActive = () => {
      this.active = true;
    };
    for (const type of ACTIVITY_EVENTS) window.addEventListener(type, markActive, { passive: true, capture: true });
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.clearTimer();
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    ws?.close(1000);
  }

  restart() {
    this.stop();
    this.stopped = false;
    this.connect();
  }

  /** Send a frame if the session is ready; returns false so the caller can queue it instead. */
  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    this.clearTimer();
    this.onState(this.hasConnected || this.attempt > 0 ? "reconnecting" : "connecting");
    const ws = new WebSocket(socketUrl());
    this.ws = ws;
    ws.addEventListener("message", (event) => this.handleMessage(ws, event));
    ws.addEventListener("close", (event) => this.handleClose(ws, event));
  }

  handleMessage(ws, event) {
    if (ws !== this.ws) return; // a socket we already gave up on
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return; // the server only sends JSON; ignore anything else rather than crash the page
    }
    if (frame.type === "session.ready") {
      this.ready = true;
      this.readyAt = Date.now();
      this.hasConnected = true;
      this.onState("connected");
      this.startHeartbeat();
    }
    this.onFrame(frame);
  }

  /** Give up on the current socket at once and reconnect with backoff (as after a close). */
  dropConnection() {
    const ws = this.ws;
    if (!ws) return;
    this.handleClose(ws, { code: 1006 });
    ws.close();
  }

  handleClose(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.ready = false;
    this.stopHeartbeat();
    if (this.stopped) return;
    if (event.code === CLOSE_UNAUTHENTICATED) {
      // The session is gone (signed out elsewhere, expired): retrying cannot help.
      this.onState("signed-out");
      return;
    }
    if (this.readyAt && Date.now() - this.readyAt >= STABLE_AFTER_MS) this.attempt = 0;
    this.readyAt = 0;
    this.onState("reconnecting");
    this.timer = setTimeout(() => this.connect(), backoffDelay(this.attempt));
    this.attempt += 1;
  }

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
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
