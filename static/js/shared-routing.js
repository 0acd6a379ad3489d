// What the leader tab of a shared connection (shared-connection.js) needs to know about frames,
// with no browser APIs, so it can be unit-tested (static/js/tests/shared.test.js):
//
//   FrameRouter   which tab a server frame is for. Events (message.new, receipts, presence …) are
//                 for every tab; answers (acks, sync batches, board states …) for the tab whose
//                 request they answer, matched by the request's key (client_msg_id, message id,
//                 room, board, client_update_id). Board membership is per socket on the server,
//                 so joins and leaves of several tabs are counted here.
//   ReadyTracker  the last session.ready, brought up to date by every frame since: what a tab
//                 that joins an open connection is given as its own session.ready.

/** Targets: null is every tab; otherwise a list of tab ids. */
const ALL = null;

function pushTo(map, key, value) {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function shiftFrom(map, key, { keep = false } = {}) {
  const list = map.get(key);
  if (!list || !list.length) return undefined;
  const head = keep ? list[0] : list.shift();
  if (!list.length) map.delete(key);
  return head;
}

export class FrameRouter {
  constructor() {
    this.reset();
  }

  /** A new connection: nothing asked on the old one will be answered. */
  reset() {
    this.requests = new Map(); // key -> [tab] (answers in the order asked)
    this.updates = new Map(); // board client_update_id -> {tab, frame}
    this.boards = new Map(); // board id -> Set of tabs that joined it
    this.joins = new Map(); // board id -> [tab] waiting for board.state
    this.boardSyncs = new Map(); // board id -> [tab] waiting for board.updates
  }

  /**
   * Tab `tab` sends `frame`: remember whom its answer is for. Returns whether it goes to the
   * server (a board.leave while another tab still has the board open does not).
   */
  outgoing(tab, frame) {
    switch (frame.type) {
      case "message.send":
        pushTo(this.requests, `m:${frame.client_msg_id}`, tab);
        return true;
      case "message.edit":
      case "message.delete":
      case "reaction.add":
      case "reaction.remove":
        pushTo(this.requests, `i:${frame.id}`, tab);
        return true;
      case "sync":
        pushTo(this.requests, `s:${frame.room}`, tab);
        return true;
      case "history":
        pushTo(this.requests, `h:${frame.room}`, tab);
        return true;
      case "board.join": {
        if (!this.boards.has(frame.board)) this.boards.set(frame.board, new Set());
        this.boards.get(frame.board).add(tab);
        pushTo(this.joins, frame.board, tab);
        return true;
      }
      case "board.leave": {
        const tabs = this.boards.get(frame.board);
        tabs?.delete(tab);
        if (tabs && tabs.size) return false; // still open in another tab
        this.boards.delete(frame.board);
        return true;
      }
      case "board.sync":
        pushTo(this.boardSyncs, frame.board, tab);
        return true;
      case "board.update":
        this.updates.set(frame.client_update_id, { tab, frame });
        return true;
      default:
        return true;
    }
  }

  /** A tab went away: the board.leave frames its boards need (those no other tab has open). */
  forgetTab(tab) {
    const leaves = [];
    for (const [board, tabs] of this.boards) {
      if (tabs.delete(tab) && !tabs.size) {
        this.boards.delete(board);
        leaves.push({ type: "board.leave", board });
      }
    }
    for (const map of [this.requests, this.joins, this.boardSyncs]) {
      for (const [key, list] of map) {
        const left = list.filter((t) => t !== tab);
        if (left.length) map.set(key, left);
        else map.delete(key);
      }
    }
    for (const [id, entry] of this.updates) if (entry.tab === tab) this.updates.delete(id);
    return leaves;
  }

  /** The tabs (ALL, or a list) a server frame is for, as [[targets, frame], …]. */
  route(frame) {
    const one = (tab, what = frame) => (tab === undefined ? [[ALL, what]] : [[[tab], what]]);
    switch (frame.type) {
      case "message.ack":
        return one(shiftFrom(this.requests, `m:${frame.client_msg_id}`));
      case "message.edit.ack":
      case "message.delete.ack":
      case "reaction.ack":
        return one(shiftFrom(this.requests, `i:${frame.id}`));
      case "sync.batch":
        // One sync is answered by batches until has_more is false (a socket answers in order).
        return one(shiftFrom(this.requests, `s:${frame.room}`, { keep: frame.has_more }));
      case "history.page":
        return one(shiftFrom(this.requests, `h:${frame.room}`));
      case "board.state": {
        const tab = shiftFrom(this.joins, frame.board) ?? shiftFrom(this.boardSyncs, frame.board);
        return tab === undefined ? [[this.#boardTabs(frame.board), frame]] : one(tab);
      }
      case "board.updates":
        return one(shiftFrom(this.boardSyncs, frame.board));
      case "board.update.ack": {
        const sent = this.updates.get(frame.client_update_id);
        if (!sent) return [[ALL, frame]];
        this.updates.delete(frame.client_update_id);
        // The server sends an update to every *other* socket on the board: the sender's other
        // tabs share its socket, so they get it from here.
        const others = [...(this.boards.get(frame.board) || [])].filter((tab) => tab !== sent.tab);
        const routed = [[[sent.tab], frame]];
        if (others.length) {
          const { board, update, client_update_id: id } = sent.frame;
          routed.push([others, { type: "board.update", board, sequence: frame.sequence, update, user: null, client_update_id: id }]);
        }
        return routed;
      }
      case "error":
        return one(this.#errorTab(frame));
      default:
        if (typeof frame.board === "string" && frame.type.startsWith("board.") && this.boards.has(frame.board)) {
          return [[this.#boardTabs(frame.board), frame]];
        }
        return [[ALL, frame]];
    }
  }

  #boardTabs(board) {
    const tabs = this.boards.get(board);
    return tabs && tabs.size ? [...tabs] : ALL;
  }

  #errorTab(frame) {
    const ref = frame.ref;
    if (typeof ref !== "string") return undefined;
    for (const key of [`m:${ref}`, `i:${ref}`]) {
      const tab = shiftFrom(this.requests, key);
      if (tab !== undefined) return tab;
    }
    const update = this.updates.get(ref);
    if (update) {
      this.updates.delete(ref);
      return update.tab;
    }
    return undefined;
  }
}

/** Frames that change which rooms there are or how far each has gone. */
export class ReadyTracker {
  constructor() {
    this.ready = null;
  }

  clear() {
    this.ready = null;
  }

  note(frame) {
    if (frame.type === "session.ready") {
      this.ready = { ...frame, rooms: { ...frame.rooms } };
      return;
    }
    const rooms = this.ready?.rooms;
    if (!rooms) return;
    if (frame.type === "room.added" && frame.room && typeof frame.room.id === "string") {
      rooms[frame.room.id] = Math.max(rooms[frame.room.id] || 0, frame.room.last_sequence || 0);
    } else if (frame.type === "room.removed" && typeof frame.room === "string") {
      delete rooms[frame.room];
    } else if (typeof frame.room === "string" && frame.room in rooms) {
      const number = frame.type === "sync.batch" ? frame.last_sequence : frame.sequence;
      if (typeof number === "number" && number > rooms[frame.room]) rooms[frame.room] = number;
    }
  }

  /**
   * A session.ready for a tab joining now: every room's number as far as the frames sent so far
   * went (a tab hears every later frame). No unread counts: they went stale since, so the page
   * reads them afresh (unread.js).
   */
  snapshot() {
    if (!this.ready) return null;
    return { ...this.ready, rooms: { ...this.ready.rooms }, unread: null };
  }
}
