// The board's local changes that the server has not acknowledged yet.
//
// Every local Yjs update is pushed here. Updates made within `batchMs` of each other are merged
// (Y.mergeUpdates) into one entry with a fresh client_update_id, so a drag sends a few frames a
// second rather than one per pointer move. An entry is sent as soon as the socket is ready and
// stays until `board.update.ack` names its id; after a reconnect (board.state) every entry still
// pending is sent again with the *same* id: the server applies an id once and answers a resend
// with the original ack, so nothing is applied twice. Entries never sent yet (offline edits) are
// merged with each other on the way out, up to `maxBytes` per entry. Nothing here knows about the
// DOM or Yjs: `merge` and `send` are given, so the logic is unit-tested (board-outbox.test.js).

export const DEFAULT_MAX_BYTES = 200 * 1024; // under the server's 256 KB per update

export class BoardOutbox {
  #entries = []; // {id, update, sent}
  #draft = []; // updates not yet made into an entry
  #timer = null;

  /**
   * send(entry): true if the frame went out (the socket is ready). merge(updates): one update.
   * newId(): a UUID. timers: {setTimeout, clearTimeout} (FakeTimers in tests).
   */
  constructor({ send, merge, newId, batchMs = 40, maxBytes = DEFAULT_MAX_BYTES, timers = globalThis, onChange = () => {} }) {
    this.send = send;
    this.merge = merge;
    this.newId = newId;
    this.batchMs = batchMs;
    this.maxBytes = maxBytes;
    this.timers = timers;
    this.onChange = onChange;
    this.connected = false;
  }

  /** Entries not acknowledged, plus local updates not batched yet. */
  get size() {
    return this.#entries.length + (this.#draft.length ? 1 : 0);
  }

  get pendingIds() {
    return this.#entries.map((entry) => entry.id);
  }

  /** A local update (Uint8Array). */
  push(update) {
    this.#draft.push(update);
    if (this.#timer === null) this.#timer = this.timers.setTimeout(() => this.flushDraft(), this.batchMs);
    this.onChange(this.size);
  }

  /** Make the batched updates an entry now and send it if we can. */
  flushDraft() {
    if (this.#timer !== null) this.timers.clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#draft.length) return;
    const updates = this.#draft;
    this.#draft = [];
    for (const chunk of this.#chunks(updates)) {
      const entry = { id: this.newId(), update: chunk, sent: false };
      this.#entries.push(entry);
      if (this.connected) this.#transmit(entry);
    }
    this.onChange(this.size);
  }

  /** The socket joined the board (board.state arrived): resend everything pending, in order. */
  connect() {
    this.connected = true;
    this.#mergeUnsent();
    for (const entry of this.#entries) this.#transmit(entry);
    this.flushDraft();
  }

  disconnect() {
    this.connected = false;
  }

  /** board.update.ack: the server has the entry `id` (true if it was ours and pending). */
  acknowledged(id) {
    const index = this.#entries.findIndex((entry) => entry.id === id);
    if (index < 0) return false;
    this.#entries.splice(index, 1);
    this.onChange(this.size);
    return true;
  }

  /** The server refused the entry `id` for good (forbidden, invalid, too_large): drop it. */
  refused(id) {
    return this.acknowledged(id);
  }

  #transmit(entry) {
    if (this.send({ id: entry.id, update: entry.update })) entry.sent = true;
  }

  /** Entries never sent (queued while offline) become as few entries as the size cap allows. */
  #mergeUnsent() {
    const sent = this.#entries.filter((entry) => entry.sent);
    const unsent = this.#entries.filter((entry) => !entry.sent);
    if (unsent.length < 2) return;
    const merged = this.#chunks(unsent.map((entry) => entry.update)).map((update, i) => ({
      id: i === 0 ? unsent[0].id : this.newId(),
      update,
      sent: false,
    }));
    this.#entries = [...sent, ...merged];
  }

  /** Merge consecutive updates into chunks of at most maxBytes (a bigger single update stays alone). */
  #chunks(updates) {
    const out = [];
    let group = [];
    let bytes = 0;
    for (const update of updates) {
      if (group.length && bytes + update.length > this.maxBytes) {
        out.push(group.length === 1 ? group[0] : this.merge(group));
        group = [];
        bytes = 0;
      }
      group.push(update);
      bytes += update.length;
    }
    if (group.length) out.push(group.length === 1 ? group[0] : this.merge(group));
    return out;
  }
}
