// The timeline of one room as the page holds it: which messages are shown, in which order, and
// how far through the room's numbered changes the page has got. No DOM here: a `view` draws the
// rows (message-view.js on the room page; plain objects in static/js/tests/timeline.test.js).
//
// Invariants this module keeps:
//   * a message is shown at most once: copies are keyed by message id, and every copy that
//     arrives (REST page, live event, sync batch, ack) is *upserted*. A copy no newer than the one
//     shown is ignored; a newer one (an edit, a deletion) replaces it in place;
//   * messages are in timeline order (message.sequence), whatever order copies arrive in;
//   * every message from the oldest one loaded onwards is shown, and every change of the room
//     numbered up to `lastChange` has been applied: "what did I miss?" is always
//     `sync after lastChange` (docs/protocol.md);
//   * a deleted message keeps its place as a tombstone, and no older copy brings its text back.

const SYNC_TIMEOUT_MS = 15000; // no sync.batch by then: ask again

/**
 * How recent a copy of a message is, for copies without `changed_sequence`. Only the author edits
 * (edited_at only grows) and a deletion is final, so such copies compare by (deleted, edited_at).
 * ISO strings in one time zone sort like the times they name, and "~" sorts after all of them.
 */
export const versionOf = (message) => (message.deleted ? "~" : message.edited_at || "");

/**
 * Is `copy` newer than `than` (two copies of one message)? Every change of a message (an edit, a
 * delete, a reaction, a reply in its thread) takes a higher number, its `changed_sequence`: copies
 * that both carry one compare by it (reactions and reply counts change nothing else).
 */
export const isNewer = (copy, than) =>
  Number.isInteger(copy.changed_sequence) && Number.isInteger(than.changed_sequence)
    ? copy.changed_sequence > than.changed_sequence
    : versionOf(copy) > versionOf(than);

const NO_VIEW = { insert() {}, update() {} };

export class Timeline {
  #view;
  #requestSync;
  #onCopy;
  #syncTimeoutMs;
  #timers;
  #slots = new Map(); // message id -> {message}: everything shown
  #order = []; // the same slots, by message.sequence
  #limbo = new Map(); // message id -> newest copy of a message older than the loaded history
  #reachedBeginning = false;
  #lastChange; // every change numbered up to this one is applied
  #latestKnown; // the highest change number we know exists
  #syncing = false;
  #syncTimer = null;

  /**
   * view.insert(message, next): draw a new row in front of the row of `next` (null: at the end).
   * view.update(message, previous): a newer copy of a shown message replaced `previous`.
   * requestSync(afterSequence): ask the server for every change after that number; returns
   *   false if the request could not be sent (offline: call `catchUp` once back).
   * onCopy(message): sees every copy that arrives, even one that changes nothing.
   * lastChange: the room's latest change number when the page's history was read.
   */
  constructor({
    view = NO_VIEW,
    requestSync = () => false,
    onCopy = () => {},
    lastChange = 0,
    syncTimeoutMs = SYNC_TIMEOUT_MS,
    timers = globalThis,
  } = {}) {
    this.#view = view;
    this.#requestSync = requestSync;
    this.#onCopy = onCopy;
    this.#syncTimeoutMs = syncTimeoutMs;
    this.#timers = timers;
    this.#lastChange = lastChange;
    this.#latestKnown = lastChange;
  }

  // -------------------------------------------------------------------------------------------
  // What is shown

  get size() {
    return this.#order.length;
  }

  /** The lowest message sequence shown (scroll-back continues below it); null if none. */
  get lowest() {
    return this.#order.length ? this.#order[0].message.sequence : null;
  }

  /** The highest message sequence shown; 0 if none. */
  get highest() {
    return this.#order.length ? this.#order.at(-1).message.sequence : 0;
  }

  get reachedBeginning() {
    return this.#reachedBeginning;
  }

  has(id) {
    return this.#slots.has(id);
  }

  /** The copy of a message shown now (undefined if it is not shown). */
  message(id) {
    return this.#slots.get(id)?.message;
  }

  /** Every message shown, in timeline order. */
  messages() {
    return this.#order.map((slot) => slot.message);
  }

  /** The newest shown message that passes `test`, or null. */
  newest(test) {
    for (let index = this.#order.length - 1; index >= 0; index -= 1) {
      if (test(this.#order[index].message)) return this.#order[index].message;
    }
    return null;
  }

  /** Loaded history is everything from `lowest` on; older messages arrive with scroll-back. */
  inLoadedRange(sequence) {
    return this.#reachedBeginning || this.#order.length === 0 || sequence >= this.lowest;
  }

  /** The oldest message is loaded: from now on nothing can be older than the history. */
  markBeginning() {
    this.#reachedBeginning = true;
    this.#limbo.clear();
  }

  /**
   * Show one copy of a message. `history`: it comes from a REST page that extends the loaded
   * range downwards. Returns "added", "updated" or null (nothing changed on screen).
   */
  upsert(message, { history = false } = {}) {
    this.#onCopy(message);
    const slot = this.#slots.get(message.id);
    if (slot) {
      if (!isNewer(message, slot.message)) return null; // a copy we already show, or an older one
      const previous = slot.message;
      slot.message = message;
      this.#view.update(message, previous);
      return "updated";
    }
    if (!history && !this.inLoadedRange(message.sequence)) {
      // Older than anything loaded: remember the newest copy so scroll-back can't show a stale one.
      const known = this.#limbo.get(message.id);
      if (!known || isNewer(message, known)) this.#limbo.set(message.id, message);
      return null;
    }
    const kept = this.#limbo.get(message.id);
    if (kept) {
      this.#limbo.delete(message.id);
      if (isNewer(kept, message)) message = kept;
    }
    this.#insert(message);
    return "added";
  }

  /** Upsert several copies; returns how many rows were added and updated. */
  upsertAll(messages, options = {}) {
    let added = 0;
    let updated = 0;
    for (const message of messages) {
      const result = this.upsert(message, options);
      if (result === "added") added += 1;
      else if (result === "updated") updated += 1;
    }
    return { added, updated };
  }

  #insert(message) {
    const slot = { message };
    const order = this.#order;
    let index = order.length;
    if (index && order[index - 1].message.sequence > message.sequence) {
      // Not the newest (the common case): find the first row with a higher sequence.
      let low = 0;
      let high = order.length - 1;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (order[middle].message.sequence > message.sequence) high = middle;
        else low = middle + 1;
      }
      index = low;
    }
    order.splice(index, 0, slot);
    this.#slots.set(message.id, slot);
    this.#view.insert(message, order[index + 1]?.message ?? null);
  }

  // -------------------------------------------------------------------------------------------
  // Change numbers: live changes, gaps and the sync that fills them

  get lastChange() {
    return this.#lastChange;
  }

  get latestKnown() {
    return this.#latestKnown;
  }

  get syncing() {
    return this.#syncing;
  }

  /**
   * A live change (message.new / message.edit / message.delete) numbered `number`. A number right
   * after lastChange moves it on; a higher one reveals a hole (a change never reached us), which
   * a sync fills. While a sync runs, it ends by checking what it still lacks.
   */
  applyChange(number, message) {
    const result = this.upsert(message);
    this.#latestKnown = Math.max(this.#latestKnown, number);
    if (!this.#syncing) {
      if (number === this.#lastChange + 1) this.#lastChange = number;
      else if (number > this.#lastChange + 1) this.sync();
    }
    return result;
  }

  /** One sync.batch: after it we hold every change up to its last_sequence. */
  applySyncBatch({ events, last_sequence: lastSequence, has_more: hasMore }) {
    const counts = this.upsertAll(events.map((event) => event.message));
    this.#lastChange = Math.max(this.#lastChange, lastSequence);
    this.#latestKnown = Math.max(this.#latestKnown, this.#lastChange);
    if (hasMore) {
      this.#armSyncTimeout(); // more batches follow
      return counts;
    }
    this.#stopSync();
    if (this.#latestKnown > this.#lastChange) this.sync();
    return counts;
  }

  /**
   * The room's latest change number is `latest` (session.ready, being re-added): sync if we are
   * behind. `restart`: the connection was new, so a sync asked on the previous one died with it.
   */
  catchUp(latest = 0, { restart = false } = {}) {
    if (restart) this.#stopSync();
    this.#latestKnown = Math.max(this.#latestKnown, latest);
    if (this.#latestKnown > this.#lastChange) this.sync();
  }

  /** Ask for every change after lastChange. One request at a time; returns whether one was sent. */
  sync() {
    if (this.#syncing || !this.#requestSync(this.#lastChange)) return false;
    this.#syncing = true;
    this.#armSyncTimeout();
    return true;
  }

  #armSyncTimeout() {
    this.#timers.clearTimeout(this.#syncTimer);
    this.#syncTimer = this.#timers.setTimeout(() => {
      this.#syncTimer = null;
      this.#syncing = false; // the answer got lost (or the server failed): ask again
      this.sync();
    }, this.#syncTimeoutMs);
  }

  #stopSync() {
    this.#syncing = false;
    this.#timers.clearTimeout(this.#syncTimer);
    this.#syncTimer = null;
  }
}
