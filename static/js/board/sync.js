// The board on the socket (docs/protocol.md, Boards): board.join with our state vector, live
// board.update frames in, our updates out through the outbox (resent until acked), gaps in the
// numbered log filled with board.sync, and awareness (cursor, selection, viewport) both ways,
// throttled to the server's 20 a second (others' arrive one by one, or several in one
// board.awareness.batch: the server sends each socket at most one awareness frame per tick).
//
// Without a socket (Server-Sent Events or long-polling: live.js, transports.js) the stream
// follows the board itself (`?boards=`): a fresh stream sends its board.state right after its
// session.ready, a resumed one goes on from its position (what we missed comes on it, by
// number), so no board.join is sent then; updates, syncs and awareness go over REST (the same
// frames, bridged by transports.js's RestBridge), updates one at a time with the same
// client_update_ids and acks. Our awareness is then a REST session of our own
// (`rest-<user id>-<key>`), which the stream hands back to us too: we leave it out.
import { BoardOutbox } from "./outbox.js";
import { fromBase64, newId, REMOTE, toBase64, Y } from "./doc.js";

export const AWARENESS_INTERVAL_MS = 60; // ≤ 20 a second, with room to spare
export const GAP_GRACE_MS = 300; // a missing number may still be on its way (e.g. an ack racing)
export const AWARENESS_FORGET_MS = 30000;
// Over REST each update is a request: a gesture's updates are merged over a longer while.
export const STREAM_BATCH_MS = 200;
const SOCKET_BATCH_MS = 50;
const RETRY_LATER = new Set(["rate_limited", "unavailable", "internal"]);
// Refusals that mean the board is gone for us (deleted, or we are no longer in its room).
export const GONE = new Set(["not_found", "not_member", "account_inactive"]);

/**
 * The highest number we have contiguously, given numbers that may arrive out of order (our own
 * acks and others' updates interleave). Pure; unit-tested.
 */
export class SequenceTracker {
  constructor(last = 0) {
    this.last = last;
    this.ahead = new Set(); // numbers seen above last + 1
  }

  /** A number was applied; returns true if it leaves a gap below it. */
  note(sequence) {
    if (sequence <= this.last) return false;
    this.ahead.add(sequence);
    while (this.ahead.has(this.last + 1)) {
      this.ahead.delete(this.last + 1);
      this.last += 1;
    }
    return this.ahead.size > 0;
  }

  /** Everything up to `sequence` is in (board.state, the end of a sync batch). */
  reach(sequence) {
    if (sequence > this.last) this.last = sequence;
    for (const n of [...this.ahead]) if (n <= this.last) this.ahead.delete(n);
    while (this.ahead.has(this.last + 1)) {
      this.ahead.delete(this.last + 1);
      this.last += 1;
    }
  }

  get hasGap() {
    return this.ahead.size > 0;
  }
}

/** Call `send(state)` at most once per `interval` ms, always ending with the latest state. Pure. */
export class Throttle {
  constructor(send, interval, timers = globalThis, now = () => performance.now()) {
    this.sendFn = send;
    this.interval = interval;
    this.timers = timers;
    this.now = now;
    this.last = -Infinity;
    this.timer = null;
    this.pending = undefined;
  }

  push(value) {
    this.pending = value;
    if (this.timer !== null) return;
    const wait = this.last + this.interval - this.now();
    if (wait <= 0) this.fire();
    else this.timer = this.timers.setTimeout(() => this.fire(), wait);
  }

  fire() {
    this.timer = null;
    if (this.pending === undefined) return;
    const value = this.pending;
    this.pending = undefined;
    this.last = this.now();
    this.sendFn(value);
  }

  cancel() {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.pending = undefined;
  }
}

export class BoardSync {
  /**
   * boardDoc: BoardDoc. send(frame): false if the socket is not ready. Callbacks: onStatus({joined,
   * pending, sequence}), onAwareness(peers: Map session -> {user, state, at}), onComment(comment),
   * onError(frame), onJoined(), onGone(frame, {certain}): the board could not be joined (certain:
   * the answer named the board; else a ref-less error that came while joining, to be checked).
   */
  constructor({ board, boardDoc, send, me, onStatus = () => {}, onAwareness = () => {}, onComment = () => {}, onError = () => {}, onJoined = () => {}, onGone = () => {} }) {
    this.board = board;
    this.boardDoc = boardDoc;
    this.sendFrame = send;
    this.me = me;
    this.onStatus = onStatus;
    this.onAwareness = onAwareness;
    this.onComment = onComment;
    this.onError = onError;
    this.onJoined = onJoined;
    this.onGone = onGone;
    this.joined = false;
    this.joining = false; // a board.join went and its board.state has not come yet
    this.transport = "websocket"; // live.js's: "websocket" | "sse" | "poll"
    this.sessionKey = newId(); // over REST, our awareness session is rest-<user id>-<key>
    this.ownSession = `rest-${me?.id}-${this.sessionKey}`;
    this.tracker = new SequenceTracker(0);
    this.syncing = false;
    this.gapTimer = null;
    this.peers = new Map(); // session -> {user, state, at}
    this.localAwareness = null;
    this.outbox = new BoardOutbox({
      send: (entry) =>
        this.joined &&
        this.sendFrame({ type: "board.update", board: this.board, update: toBase64(entry.update), client_update_id: entry.id }),
      merge: (updates) => Y.mergeUpdates(updates),
      newId,
      batchMs: SOCKET_BATCH_MS,
      onChange: () => this.status(),
    });
    this.awareness = new Throttle(
      (state) => this.joined && this.sendFrame({ type: "board.awareness", board: this.board, state, ...this.#restSession() }),
      AWARENESS_INTERVAL_MS,
    );
    boardDoc.doc.on("update", (update, origin) => {
      if (origin !== REMOTE) this.outbox.push(update);
    });
    // Peers forget a cursor not heard of for 30 s: say ours again now and then while idle.
    this.sweep = setInterval(() => {
      this.#forgetSilentPeers();
      if (this.joined && this.localAwareness && performance.now() - this.awareness.last > 10000) {
        this.awareness.push(this.localAwareness);
      }
    }, 5000);
  }

  get sequence() {
    return this.tracker.last;
  }

  status() {
    this.onStatus({ joined: this.joined, pending: this.outbox.size, sequence: this.tracker.last });
  }

  /** Over SSE or long-polling (no socket). */
  get streamed() {
    return this.transport !== "websocket";
  }

  /** The connection's transport (live.js), told before its state. */
  setTransport(kind) {
    this.transport = kind || "websocket";
    this.outbox.batchMs = this.streamed ? STREAM_BATCH_MS : SOCKET_BATCH_MS;
  }

  #restSession() {
    return this.streamed ? { session: this.sessionKey } : {};
  }

  /**
   * The connection is (again) ready (`ready`: its session.ready): join the board with what we
   * have. Over a stream that follows the board, its own board.state (fresh) or the updates after
   * its position (resumed) do that; without `ready` (our document was thrown away) the whole
   * state is asked for.
   */
  connected(ready = null) {
    performance.mark("parley-board-join");
    this.joined = false;
    if (this.streamed && ready) {
      this.joining = true; // (a refusal comes as an error frame naming the board)
      if (ready.resumed) this.#becomeJoined([]);
      return;
    }
    this.joining = true;
    const stateVector = toBase64(this.boardDoc.stateVector());
    this.sendFrame({ type: "board.join", board: this.board, state_vector: stateVector });
  }

  disconnected() {
    this.joined = false;
    this.joining = false;
    this.syncing = false;
    this.outbox.disconnect();
    this.peers.clear();
    this.onAwareness(this.peers);
    this.status();
  }

  /** Tell the others our cursor is gone (the page goes away; over REST, a last request). */
  sayLeaving() {
    if (this.joined) this.sendFrame({ type: "board.leave", board: this.board, ...this.#restSession() });
  }

  leave() {
    this.sayLeaving();
    this.joined = false;
    this.awareness.cancel();
    clearInterval(this.sweep);
  }

  /** Our awareness state (null: gone); sent throttled, and again after every (re)join. */
  setAwareness(state) {
    this.localAwareness = state;
    this.awareness.push(state);
  }

  /** Handle a frame from the socket; returns true if it was about this board. */
  onFrame(frame) {
    if (frame.type === "error") return this.#onErrorFrame(frame);
    if (frame.board !== this.board) return false;
    switch (frame.type) {
      case "board.state":
        this.#onState(frame);
        break;
      case "board.update":
        this.boardDoc.applyRemote(fromBase64(frame.update));
        this.#note(frame.sequence);
        break;
      case "board.update.ack":
        this.outbox.acknowledged(frame.client_update_id);
        this.#note(frame.sequence);
        break;
      case "board.updates":
        this.#onUpdates(frame);
        break;
      case "board.awareness":
        this.#onAwareness(frame);
        break;
      case "board.awareness.batch":
        // The server's tick: the latest state of every socket that changed, in one frame.
        this.#onAwarenessBatch(frame);
        break;
      case "board.comment":
        this.onComment(frame.comment);
        break;
      default:
        return false;
    }
    return true;
  }

  #onState(frame) {
    performance.mark("parley-board-state");
    this.boardDoc.applyRemote(fromBase64(frame.update));
    performance.mark("parley-board-applied");
    this.tracker.reach(frame.sequence);
    this.syncing = false;
    if (!this.joined) this.#becomeJoined(frame.awareness || [], frame);
    this.status();
  }

  /** Joined: others' cursors as given, our pending updates (again) and our awareness out. */
  #becomeJoined(awareness, frame = null) {
    this.joined = true;
    this.joining = false;
    this.peers.clear();
    for (const entry of awareness) {
      if (entry.state && !this.#own(entry)) this.peers.set(this.#peerKey(entry), { user: entry.user, state: entry.state, at: Date.now() });
    }
    this.onAwareness(this.peers);
    this.outbox.connect();
    if (this.localAwareness) this.awareness.push(this.localAwareness);
    this.onJoined(frame);
    this.status();
  }

  /** Our own REST awareness, handed back by the stream. */
  #own(entry) {
    return this.streamed && entry.session === this.ownSession;
  }

  #onUpdates(frame) {
    for (const item of frame.updates) {
      this.boardDoc.applyRemote(fromBase64(item.update));
      this.tracker.note(item.sequence);
      // Our own updates come back in a sync too: they are in, whether or not the ack was lost.
      if (item.client_update_id) this.outbox.acknowledged(item.client_update_id);
    }
    this.tracker.reach(frame.last_sequence);
    this.syncing = false;
    if (frame.has_more || this.tracker.hasGap) this.#requestSync();
    this.status();
  }

  #note(sequence) {
    if (typeof sequence !== "number") return;
    const gap = this.tracker.note(sequence);
    this.status();
    if (!gap) {
      clearTimeout(this.gapTimer);
      this.gapTimer = null;
      return;
    }
    if (this.gapTimer === null) {
      this.gapTimer = setTimeout(() => {
        this.gapTimer = null;
        if (this.tracker.hasGap) this.#requestSync();
      }, GAP_GRACE_MS);
    }
  }

  #requestSync() {
    if (this.syncing || !this.joined) return;
    this.syncing = this.sendFrame({ type: "board.sync", board: this.board, after_sequence: this.tracker.last });
  }

  #peerKey(entry) {
    return String(entry.session ?? entry.user?.id);
  }

  #onAwareness(frame) {
    if (this.#own(frame)) return;
    const key = this.#peerKey(frame);
    if (frame.state) this.peers.set(key, { user: frame.user, state: frame.state, at: Date.now() });
    else this.peers.delete(key);
    this.onAwareness(this.peers, key);
  }

  #onAwarenessBatch(frame) {
    const states = Array.isArray(frame.states) ? frame.states : [];
    for (const entry of states) {
      if (this.#own(entry)) continue;
      const key = this.#peerKey(entry);
      if (entry.state) this.peers.set(key, { user: entry.user, state: entry.state, at: Date.now() });
      else this.peers.delete(key);
    }
    if (states.length) this.onAwareness(this.peers);
  }

  #forgetSilentPeers() {
    const cutoff = Date.now() - AWARENESS_FORGET_MS;
    let changed = false;
    for (const [key, peer] of this.peers) {
      if (peer.at < cutoff) {
        this.peers.delete(key);
        changed = true;
      }
    }
    if (changed) this.onAwareness(this.peers);
  }

  #onErrorFrame(frame) {
    if (!frame.ref && (frame.board === this.board || (frame.board === undefined && this.joining))) return this.#onBoardError(frame);
    if (!frame.ref || !this.outbox.pendingIds.includes(frame.ref)) return false;
    if (RETRY_LATER.has(frame.code)) {
      const wait = Math.max(frame.retry_after_ms || 0, 250);
      setTimeout(() => this.joined && this.outbox.connect(), wait);
    } else {
      this.outbox.refused(frame.ref);
      this.onError(frame);
    }
    return true;
  }

  /** A join or a sync refused: the stream's answer for the board (it names it), the REST
   * bridge's, or (socket) a ref-less error while our board.join waits for its board.state. */
  #onBoardError(frame) {
    const named = frame.board === this.board;
    if (GONE.has(frame.code)) {
      this.joining = false;
      this.onGone(frame, { certain: named });
      return named;
    }
    if (!named) return false; // some other frame's error (the split view shares the room's socket)
    this.syncing = false;
    if (RETRY_LATER.has(frame.code)) {
      const wait = Math.max(frame.retry_after_ms || 0, 250);
      if (!this.joined) setTimeout(() => !this.joined && this.streamed && this.connected(), wait);
      else setTimeout(() => this.tracker.hasGap && this.#requestSync(), wait);
    }
    return true;
  }
}
