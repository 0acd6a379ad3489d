// The timeline's invariants (timeline.js): order, no duplicates, stale copies ignored, tombstones,
// gaps filled by sync. Each test drives a Timeline with plain data and checks concrete values,
// through a list model (ListView) and, where it matters, through the real rows (MessageRows).
import { MessageRows } from "../message-view.js";
import { Timeline } from "../timeline.js";
import { assert, assertEqual, FakeTimers, test } from "./harness.js";

const ANN = { id: 1, username: "ann" };
const BEN = { id: 2, username: "ben" };
const START = Date.UTC(2025, 0, 6, 9, 0, 0);
const at = (minutes) => new Date(START + minutes * 60_000).toISOString();

/** A message payload as the server sends it (messaging/payloads.py), one minute apart. */
function message(sequence, extra = {}) {
  return {
    id: `m${sequence}`,
    room: "r1",
    sequence,
    sender: ANN,
    content: `message ${sequence}`,
    client_msg_id: `c${sequence}`,
    created_at: at(sequence),
    edited_at: null,
    deleted: false,
    ...extra,
  };
}
const edited = (copy, content, minutes) => ({ ...copy, content, edited_at: at(minutes) });
const deleted = (copy) => ({ ...copy, content: "", deleted: true });
const frame = (number, copy) => ({ type: "message.new", sequence: number, message: copy });

/** A view that keeps rows in a plain array, placed only by what the timeline tells it. */
class ListView {
  rows = [];
  inserts = 0;
  updates = 0;

  insert(copy, next) {
    this.inserts += 1;
    const index = next ? this.rows.findIndex((row) => row.id === next.id) : this.rows.length;
    if (index < 0) throw new Error(`insert before ${next.id}, which is not shown`);
    this.rows.splice(index, 0, { ...copy });
  }

  update(copy, previous) {
    this.updates += 1;
    const index = this.rows.findIndex((row) => row.id === previous.id);
    if (index < 0) throw new Error(`update of ${copy.id}, which is not shown`);
    this.rows[index] = { ...copy };
  }

  get sequences() {
    return this.rows.map((row) => row.sequence);
  }
}

const sequences = (timeline) => timeline.messages().map((copy) => copy.sequence);

/** The rows MessageRows drew: [id, sequence, body text] each. */
function drawn(list) {
  return [...list.children].map((row) => [
    row.dataset.id,
    Number(row.dataset.sequence),
    row.querySelector(".msg-body").textContent,
  ]);
}

function domTimeline(options = {}) {
  const list = document.createElement("ol");
  const rows = new MessageRows(list, { me: ANN });
  const timeline = new Timeline({ view: rows, ...options });
  return { list, rows, timeline };
}

// ---------------------------------------------------------------------------------------------
// Order

test("rows are in sequence order whatever order copies arrive in", () => {
  const view = new ListView();
  const timeline = new Timeline({ view });
  timeline.upsertAll([5, 3, 9, 1, 7].map((n) => message(n)), { history: true });
  for (const n of [4, 10, 2, 8, 6]) timeline.upsert(message(n));
  assertEqual(sequences(timeline), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "timeline order");
  assertEqual(view.sequences, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "view order");
  assertEqual([timeline.lowest, timeline.highest, timeline.size], [1, 10, 10], "lowest, highest, size");
});

test("the drawn rows follow the timeline's order, and group one sender's run", () => {
  const { list, timeline } = domTimeline();
  timeline.upsertAll([message(3), message(1, { sender: BEN }), message(4)], { history: true });
  timeline.upsert(message(2));
  assertEqual(
    drawn(list).map(([id, sequence]) => [id, sequence]),
    [["m1", 1], ["m2", 2], ["m3", 3], ["m4", 4]],
    "rows in the <ol>",
  );
  // Ben's row opens the day; Ann's three rows a minute apart form one group under m2.
  assertEqual(
    [...list.children].map((row) => [row.classList.contains("is-new-day"), row.classList.contains("is-continuation")]),
    [[true, false], [false, false], [false, true], [false, true]],
    "day divider and grouping",
  );
});

// ---------------------------------------------------------------------------------------------
// No duplicates

test("a message is shown once however many copies arrive (REST, live, sync, ack)", () => {
  const view = new ListView();
  const timeline = new Timeline({ view, lastChange: 0 });
  const copy = message(1);
  const results = [
    timeline.upsert(copy, { history: true }), // the REST page
    timeline.applyChange(1, { ...copy }), // message.new
    timeline.applySyncBatch({ events: [frame(1, { ...copy })], last_sequence: 1, has_more: false }).added, // sync
    timeline.upsertAll([{ ...copy }]).added, // message.ack
  ];
  assertEqual(results, ["added", null, 0, 0], "what each copy did");
  assertEqual([timeline.size, view.inserts, view.updates], [1, 1, 0], "rows, inserts, updates");
  assertEqual(view.rows.map((row) => row.id), ["m1"], "rows shown");
});

test("the drawn list never holds a message twice", () => {
  const { list, timeline } = domTimeline();
  timeline.upsertAll([message(2), message(1)], { history: true });
  timeline.upsertAll([message(1), message(2), message(3), message(3)]);
  timeline.upsert(message(2), { history: true });
  const ids = drawn(list).map(([id]) => id);
  assertEqual(ids, ["m1", "m2", "m3"], "drawn ids");
});

test("every copy is seen by onCopy, even one that changes nothing (pending rows settle on it)", () => {
  const seen = [];
  const timeline = new Timeline({ onCopy: (copy) => seen.push(copy.client_msg_id) });
  timeline.upsert(message(1), { history: true });
  timeline.upsert(message(1));
  timeline.upsert(message(2, { sequence: 2 }));
  assertEqual(seen, ["c1", "c1", "c2"], "copies seen");
});

// ---------------------------------------------------------------------------------------------
// Newer copies, stale copies, tombstones

test("a newer copy (an edit) replaces the row in place", () => {
  const view = new ListView();
  const timeline = new Timeline({ view });
  timeline.upsertAll([message(1), message(2), message(3)], { history: true });
  const result = timeline.upsert(edited(message(2), "fixed", 30));
  assertEqual(result, "updated", "result");
  assertEqual(view.rows.map((row) => row.content), ["message 1", "fixed", "message 3"], "view contents");
  assertEqual(timeline.message("m2").content, "fixed", "timeline copy");
  assertEqual([view.inserts, view.updates, timeline.size], [3, 1, 3], "inserts, updates, size");
});

test("a stale copy never overwrites a newer one", () => {
  const view = new ListView();
  const timeline = new Timeline({ view });
  const original = message(1);
  timeline.upsert(original, { history: true });
  timeline.upsert(edited(original, "second edit", 50));
  const results = [
    timeline.upsert(edited(original, "first edit", 40)), // an older edit, arriving late
    timeline.upsert(original), // the unedited copy, e.g. from a REST page read earlier
    timeline.upsert(edited(original, "second edit", 50)), // the same version again
  ];
  assertEqual(results, [null, null, null], "stale copies change nothing");
  assertEqual(timeline.message("m1").content, "second edit", "timeline copy");
  assertEqual(view.rows[0].content, "second edit", "view copy");
  assertEqual(view.updates, 1, "updates");
});

test("a deletion is final: no edit, however late its time, brings the text back", () => {
  const { list, timeline } = domTimeline();
  const original = message(1);
  timeline.upsert(original, { history: true });
  assertEqual(timeline.upsert(deleted(edited(original, "", 20))), "updated", "the deletion");
  assertEqual(timeline.upsert(edited(original, "resurrected?", 90)), null, "an edit after it");
  assertEqual(timeline.upsert(original), null, "the original after it");
  assertEqual(timeline.message("m1").deleted, true, "still deleted");
  assertEqual(drawn(list), [["m1", 1, "This message was deleted."]], "drawn tombstone");
});

test("tombstones keep their place and lose their text", () => {
  const { list, timeline } = domTimeline();
  timeline.upsertAll([message(1), message(2), message(3)], { history: true });
  timeline.applyChange(4, deleted(message(2)));
  // A message first seen as deleted (a sync after it was removed) also gets its place.
  timeline.upsert(deleted(message(5)));
  assertEqual(
    drawn(list),
    [
      ["m1", 1, "message 1"],
      ["m2", 2, "This message was deleted."],
      ["m3", 3, "message 3"],
      ["m5", 5, "This message was deleted."],
    ],
    "drawn rows",
  );
  assertEqual(list.querySelector('[data-id="m2"]').dataset.deleted, "true", "data-deleted");
  assert(!list.textContent.includes("message 2"), "the deleted text is gone from the page");
  assertEqual(sequences(timeline), [1, 2, 3, 5], "timeline order");
});

test("a copy older than the loaded history waits, and scroll-back shows its newest version", () => {
  const view = new ListView();
  const timeline = new Timeline({ view, lastChange: 100 });
  timeline.upsertAll([52, 51, 53].map((n) => message(n)), { history: true });
  assertEqual(timeline.lowest, 51, "lowest loaded");
  // Live changes to messages below the loaded range: not shown (there is no place for them yet)...
  assertEqual(timeline.applyChange(101, edited(message(10), "edited while scrolled away", 200)), null, "edit of 10");
  assertEqual(timeline.applyChange(102, deleted(message(11))), null, "deletion of 11");
  assertEqual([timeline.has("m10"), timeline.has("m11"), timeline.size], [false, false, 3], "nothing shown yet");
  assertEqual(timeline.lastChange, 102, "the changes still count as applied");
  // ...until scroll-back brings older (stale) copies of them: the newest version is what shows.
  timeline.upsertAll([message(12), message(11), message(10)], { history: true });
  assertEqual(sequences(timeline), [10, 11, 12, 51, 52, 53], "order after scroll-back");
  assertEqual(timeline.message("m10").content, "edited while scrolled away", "edited copy kept");
  assertEqual(timeline.message("m11").deleted, true, "deleted copy kept");
  assertEqual(view.rows[1].deleted, true, "view shows the tombstone");
});

test("once the beginning is loaded, a copy of any age is shown", () => {
  const timeline = new Timeline({ view: new ListView() });
  timeline.upsertAll([message(6), message(5)], { history: true });
  assertEqual(timeline.upsert(message(2)), null, "before the beginning is known");
  timeline.markBeginning();
  assertEqual(timeline.upsert(message(3)), "added", "after");
  assertEqual(sequences(timeline), [3, 5, 6], "order");
});

// ---------------------------------------------------------------------------------------------
// Change numbers, gaps and sync

function syncing(options = {}) {
  const requests = [];
  const timers = new FakeTimers();
  const view = new ListView();
  const timeline = new Timeline({
    view,
    timers,
    requestSync: (after) => {
      requests.push(after);
      return options.online?.() ?? true;
    },
    ...options,
  });
  return { requests, timers, view, timeline };
}

test("consecutive live changes move lastChange on without a sync", () => {
  const { requests, timeline } = syncing({ lastChange: 3 });
  timeline.upsertAll([message(1), message(2), message(3)], { history: true });
  timeline.applyChange(4, message(4));
  timeline.applyChange(5, edited(message(4), "edited", 9)); // an edit takes a number, adds no row
  assertEqual([timeline.lastChange, timeline.latestKnown, timeline.size], [5, 5, 4], "lastChange, latestKnown, rows");
  assertEqual(requests, [], "sync requests");
  assertEqual(timeline.message("m4").content, "edited", "the edit applied");
});

test("a gap asks for everything after lastChange, and the sync fills it in order", () => {
  const { requests, view, timeline } = syncing({ lastChange: 2 });
  timeline.upsertAll([message(2), message(1)], { history: true });
  timeline.applyChange(3, message(3));
  timeline.applyChange(5, message(5)); // change 4 never arrived
  assertEqual(requests, [3], "sync after the last change applied");
  assertEqual([timeline.syncing, timeline.lastChange, timeline.latestKnown], [true, 3, 5], "state during the sync");
  timeline.applyChange(6, message(6)); // arrives while the sync runs: shown, no second request
  assertEqual(requests, [3], "one sync at a time");
  timeline.applySyncBatch({ events: [frame(4, message(4)), frame(5, message(5))], last_sequence: 5, has_more: false });
  // The batch ended at 5 but 6 is known: ask again from 5.
  assertEqual(requests, [3, 5], "asks again for what the batch lacked");
  timeline.applySyncBatch({ events: [frame(6, message(6))], last_sequence: 6, has_more: false });
  assertEqual([timeline.syncing, timeline.lastChange, timeline.latestKnown], [false, 6, 6], "state after");
  assertEqual(requests, [3, 5], "no more requests");
  assertEqual(view.sequences, [1, 2, 3, 4, 5, 6], "every message once, in order");
});

test("a sync whose answer is lost is asked again; batches with has_more keep it open", () => {
  const { requests, timers, timeline } = syncing({ lastChange: 0, syncTimeoutMs: 15_000 });
  timeline.catchUp(10, { restart: true }); // session.ready says the room is at 10
  assertEqual(requests, [0], "first request");
  timeline.applySyncBatch({ events: [1, 2, 3].map((n) => frame(n, message(n))), last_sequence: 3, has_more: true });
  assertEqual([timeline.syncing, timeline.lastChange, requests.length], [true, 3, 1], "after a partial batch");
  timers.advance(14_999);
  assertEqual(requests, [0], "not asked again before the timeout");
  timers.advance(1); // the rest never came
  assertEqual(requests, [0, 3], "asked again from where the last batch ended");
  timeline.applySyncBatch({
    events: [4, 5, 6, 7, 8, 9, 10].map((n) => frame(n, message(n))),
    last_sequence: 10,
    has_more: false,
  });
  assertEqual([timeline.syncing, timeline.lastChange, timers.count], [false, 10, 0], "done, no timer left");
  assertEqual(sequences(timeline), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "rows");
});

test("offline, no sync counts as running; catching up once back asks for it", () => {
  let online = false;
  const { requests, timeline } = syncing({ lastChange: 4, online: () => online });
  timeline.applyChange(7, message(7));
  assertEqual([requests, timeline.syncing], [[4], false], "the request could not be sent");
  online = true;
  timeline.catchUp(9, { restart: true }); // session.ready after reconnecting
  assertEqual([requests, timeline.syncing, timeline.latestKnown], [[4, 4], true, 9], "asked again once online");
});

test("a new connection forgets the sync asked on the old one", () => {
  const { requests, timeline } = syncing({ lastChange: 1 });
  timeline.catchUp(5);
  timeline.catchUp(6); // same connection: the running sync will check what it still lacks
  assertEqual(requests, [1], "one request per connection");
  timeline.catchUp(6, { restart: true });
  assertEqual(requests, [1, 1], "the new connection asks again");
});

// ---------------------------------------------------------------------------------------------
// Threads and reactions: copies that differ only in reactions or reply counts

test("a copy with a higher changed_sequence is newer, though its text and edit time are the same", () => {
  const { list, timeline } = domTimeline();
  const original = message(1, { changed_sequence: 1, reactions: [], reply_count: 0 });
  timeline.upsert(original, { history: true });
  const reacted = {
    ...original,
    changed_sequence: 3,
    reactions: [{ emoji: "🎉", count: 2, users: [ANN, BEN] }],
    reply_count: 1,
    last_reply_at: at(5),
  };
  assertEqual(timeline.upsert(reacted), "updated", "the reaction's copy");
  assertEqual(timeline.upsert({ ...original, changed_sequence: 2 }), null, "an older copy after it");
  assertEqual(timeline.message("m1").reactions[0].count, 2, "kept");
  const chip = list.querySelector(".reaction-chip");
  assertEqual(
    [chip.dataset.emoji, chip.querySelector(".reaction-count").textContent, chip.getAttribute("aria-pressed")],
    ["🎉", "2", "true"],
    "the chip (ann reacted: pressed)",
  );
  assertEqual(list.querySelector(".thread-summary .thread-count").textContent, "1 reply", "the thread line");
  assertEqual(drawn(list), [["m1", 1, "message 1"]], "the body is the text alone");
});

test("a reply links to its thread; a deleted message shows no reactions", () => {
  const { list, timeline } = domTimeline();
  timeline.upsertAll(
    [
      message(1, { changed_sequence: 1, reactions: [], reply_count: 0, reply_to: "m9" }),
      message(2, { changed_sequence: 5, deleted: true, content: "", reactions: [], reply_count: 0 }),
    ],
    { history: true },
  );
  assert(list.querySelector('[data-id="m1"] .thread-ref'), "the reply's link to its thread");
  assertEqual(list.querySelectorAll(".reaction-chip").length, 0, "no chips");
  assertEqual(list.querySelector('[data-id="m2"] .thread-summary'), null, "no thread line on the tombstone");
});
