// One live connection per browser (docs/protocol.md, "One connection per browser"): all tabs of
// one user share the connection of one of them, the leader.
//
// Election: every tab asks for the same Web Lock (navigator.locks, `parley.live.<user id>`); the
// tab holding it is the leader and runs the real connection (live.js's Connection: WebSocket,
// falling back to SSE and long-polling). The browser releases a lock the moment its tab closes
// or crashes, and grants it to the next tab waiting, which connects at once: failover needs no
// timeouts. The tabs talk over a BroadcastChannel of the same name:
//
//   leader → tabs   {t: "state", state, transport}   the connection's state (each tab shows it)
//                   {t: "frame", frame, to}          a server frame for every tab (to: null) or
//                                                    for the tabs listed (answers: FrameRouter)
//                   {t: "leader"} / {t: "resign"}    a new leader / the leader is leaving
//   tab → leader    {t: "hello", boards}             a tab joins: it is sent the state and, when
//                                                    connected, a session.ready of the numbers
//                                                    as of now (ReadyTracker)
//                   {t: "send", frame}               a frame for the server (socket mode)
//                   {t: "boards", boards}            the boards the tab has open: an SSE stream
//                                                    or a poll follows every tab's (live.js)
//                   {t: "bye"}, {t: "active"}, {t: "dead"}
//   any tab         {t: "signout"}                   signed out: every tab stops
//
// Over SSE and long-polling the tabs' writes are REST requests (transports.js RestBridge): each
// tab makes its own, so their answers come back to it directly.
//
// Browsers without Web Locks or BroadcastChannel keep a connection per tab (LiveSocket falls
// back to a plain Connection).
import { RestBridge } from "./transports.js";
import { FrameRouter } from "./shared-routing.js";

export const ACTIVITY_EVENTS = ["keydown", "mousemove", "pointerdown", "wheel", "touchstart", "focus"];
// A follower tells the leader its user is active at most this often (the leader beats every 30 s).
const ACTIVE_EVERY_MS = 10000;

/** The name tabs of this browser share the connection under (per user), or null if they cannot. */
export function shareKey() {
  if (typeof BroadcastChannel !== "function" || typeof navigator.locks?.request !== "function") return null;
  if (window.PARLEY_TEST_NO_SHARING) return null;
  const user = document.querySelector("[data-live-user]")?.dataset.liveUser; // templates/base.html
  return user ? `parley.live.${user}` : null;
}

function newTabId() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** The same interface as live.js's Connection (start, stop, send, state, kind, ready). */
export class SharedConnection {
  constructor({ key, onFrame, onState, makeConnection }) {
    this.key = key;
    this.onFrame = onFrame;
    this.onState = onState;
    this.makeConnection = makeConnection;
    this.id = newTabId();
    this.role = null; // "leader" | "follower" (null: stopped)
    this.state = null;
    this.kind = "websocket";
    this.ready = false; // frames may be sent (the connection is up)
    this.live = false; // a follower had its session.ready: frames from now on are for the page
    this.channel = null;
    this.connection = null; // the leader's
    this.router = new FrameRouter();
    this.release = null; // resolves the leader's lock
    this.abort = null; // cancels a follower's wait for the lock
    this.rest = new RestBridge({ deliver: (frame) => this.#local(frame), onDead: () => this.#post({ t: "dead" }) });
    this.activeSentAt = 0;
    this.boards = []; // the boards this tab has open (a stream follows every tab's)
    this.tabBoards = new Map(); // the leader's: tab -> its boards
    this.listening = false;
    this.signedOut = false;
  }

  start() {
    if (this.role !== null || this.signedOut) return;
    if (!this.listening) this.#listen();
    this.channel = new BroadcastChannel(this.key);
    this.channel.onmessage = (event) => this.#receive(event.data);
    this.#follow();
    const abort = new AbortController();
    this.abort = abort;
    navigator.locks
      .request(this.key, { signal: abort.signal }, () => {
        if (this.role !== "follower" || this.abort !== abort) return undefined; // stopped meanwhile
        return new Promise((resolve) => {
          this.release = resolve;
          this.#lead();
        });
      })
      .catch(() => {}); // aborted: this tab stopped waiting
  }

  stop() {
    if (this.role === "leader") {
      this.#post({ t: "resign" });
      this.connection.stop();
      this.connection = null;
    } else if (this.role === "follower") {
      this.#post({ t: "bye" });
    }
    this.role = null;
    this.ready = this.live = false;
    this.abort?.abort();
    this.abort = null;
    this.release?.();
    this.release = null;
    this.channel?.close();
    this.channel = null;
    this.#mark();
  }

  send(frame) {
    if (!this.ready) return false;
    if (this.role === "leader") return this.#sendToServer(this.id, frame);
    if (this.kind !== "websocket") return this.rest.send(frame); // REST: this tab's own requests
    this.#post({ t: "send", frame });
    return true;
  }

  /** The boards this tab has open (the split view's): over SSE or long-polling the leader's
   * stream follows every tab's. */
  setBoards(boards) {
    this.boards = [...boards];
    if (this.role === "leader") this.connection?.setBoards(this.#allBoards());
    else if (this.role === "follower") this.#post({ t: "boards", boards: this.boards });
  }

  #allBoards() {
    const all = new Set(this.boards);
    for (const boards of this.tabBoards.values()) for (const board of boards) all.add(board);
    return [...all].slice(0, 16); // the server follows at most 16 (transports.streams.MAX_BOARDS)
  }

  #setTabBoards(tab, boards) {
    if (Array.isArray(boards) && boards.length) this.tabBoards.set(tab, boards.filter((id) => typeof id === "string"));
    else if (!this.tabBoards.delete(tab)) return;
    this.connection?.setBoards(this.#allBoards());
  }

  // -- the window -------------------------------------------------------------------------------

  #listen() {
    this.listening = true;
    window.addEventListener("pagehide", () => this.stop());
    window.addEventListener("pageshow", (event) => event.persisted && this.start());
    window.addEventListener("offline", () => this.connection?.goOffline());
    window.addEventListener("online", () => this.connection?.goOnline());
    const markActive = () => {
      if (this.connection) this.connection.active = true;
      else if (this.role === "follower" && Date.now() - this.activeSentAt >= ACTIVE_EVERY_MS) {
        this.activeSentAt = Date.now();
        this.#post({ t: "active" });
      }
    };
    for (const type of ACTIVITY_EVENTS) window.addEventListener(type, markActive, { passive: true, capture: true });
    // Signing out in this tab signs out every tab (the server closes the connection too).
    document.addEventListener("submit", (event) => {
      if (event.target instanceof HTMLFormElement && event.target.matches("[data-signout]")) this.#post({ t: "signout" });
    });
  }

  /** Who we are, for the page's tests and the console (<html data-live-role>). */
  #mark() {
    document.documentElement.dataset.liveRole = this.role || "none";
    window.parleyLive = { role: this.role, tab: this.id, leaderSince: this.leaderSince ?? null };
  }

  // -- as a follower ----------------------------------------------------------------------------

  #follow() {
    this.role = "follower";
    this.ready = this.live = false;
    this.#mark();
    this.#setState(this.state === "connected" ? "reconnecting" : this.state || "connecting", this.kind);
    this.#post({ t: "hello", boards: this.boards });
  }

  #receive(message) {
    if (!message || typeof message !== "object") return;
    if (message.t === "signout") {
      this.#signOut();
      return;
    }
    if (this.role === "leader") {
      this.#fromTab(message);
      return;
    }
    if (this.role !== "follower") return;
    if (message.to && !message.to.includes(this.id)) return;
    switch (message.t) {
      case "leader":
      case "resign":
        // The connection we used is gone (or going): whatever was sent on it goes again once
        // the new leader is connected.
        this.ready = this.live = false;
        if (this.state === "connected") this.#setState("reconnecting", this.kind);
        if (message.t === "leader" && this.boards.length) this.#post({ t: "boards", boards: this.boards });
        break;
      case "state":
        // As with a connection of its own, the page may send from "connected" on (e.g. a board
        // joins), and gets frames from its session.ready on.
        this.ready = message.state === "connected";
        if (!this.ready) this.live = false;
        this.#setState(message.state, message.transport);
        if (message.state === "signed-out") this.#signOut();
        break;
      case "frame":
        if (message.frame.type === "session.ready") this.live = true;
        if (this.live) this.#local(message.frame); // before our session.ready: in its numbers
        break;
      default:
    }
  }

  // -- as the leader ----------------------------------------------------------------------------

  #lead() {
    this.role = "leader";
    this.leaderSince = Date.now();
    this.ready = false;
    this.router.reset();
    this.tabBoards = new Map(); // the tabs say theirs again (on "leader")
    this.#mark();
    this.#post({ t: "leader" });
    this.connection = this.makeConnection({
      onFrame: (frame) => this.#fromServer(frame),
      onState: (state, transport) => {
        this.ready = state === "connected";
        // A connection lost: nothing asked on it will be answered (boards are joined again).
        if (!this.ready) this.router.reset();
        this.#setState(state, transport);
        this.#post({ t: "state", state, transport });
        if (state === "signed-out") this.#signOut();
      },
    });
    this.connection.setBoards(this.#allBoards());
    this.connection.start({ listen: false });
  }

  #fromServer(frame) {
    for (const [targets, routed] of this.router.route(frame)) {
      if (targets === null || targets.includes(this.id)) this.#local(routed);
      const others = targets === null ? null : targets.filter((tab) => tab !== this.id);
      if (others === null || others.length) this.#post({ t: "frame", to: others, frame: routed });
    }
  }

  #fromTab(message) {
    const connection = this.connection;
    switch (message.t) {
      case "hello":
        this.#setTabBoards(message.from, message.boards);
        this.#post({ t: "state", to: [message.from], state: this.state, transport: this.kind });
        if (this.ready && connection.ready) {
          const ready = connection.tracker.snapshot();
          if (ready) this.#post({ t: "frame", to: [message.from], frame: { ...ready, shared: true } });
        }
        break;
      case "send":
        if (this.ready) this.#sendToServer(message.from, message.frame);
        break;
      case "bye":
        for (const frame of this.router.forgetTab(message.from)) connection.send(frame);
        this.#setTabBoards(message.from, []);
        break;
      case "boards":
        this.#setTabBoards(message.from, message.boards);
        break;
      case "active":
        connection.active = true;
        break;
      case "dead":
        connection.dropConnection();
        break;
      default:
    }
  }

  #sendToServer(tab, frame) {
    if (!this.connection?.ready) return false;
    if (!this.router.outgoing(tab, frame)) return true; // a board.leave another tab still needs
    return this.connection.send(frame);
  }

  // -- both ---------------------------------------------------------------------------------------

  #signOut() {
    this.signedOut = true;
    if (this.role) this.stop();
    if (this.state !== "signed-out") this.#setState("signed-out", this.kind);
  }

  #local(frame) {
    if (this.role !== null) this.onFrame(frame);
  }

  #post(message) {
    this.channel?.postMessage({ ...message, from: this.id });
  }

  #setState(state, transport) {
    this.kind = transport || this.kind;
    this.state = state;
    this.onState(state, this.kind);
  }
}
