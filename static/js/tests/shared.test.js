// One connection per browser: the leader tab's routing of the server's frames to the tabs
// (shared-routing.js; the election and the channel are in the browser test,
// tests/test_live_browser.py).
import { FrameRouter, ReadyTracker } from "../shared-routing.js";
import { assertEqual, test } from "./harness.js";

const ALL = null;

test("shared connection: events go to every tab, answers to the tab that asked", () => {
  const router = new FrameRouter();
  router.outgoing("a", { type: "message.send", room: "r1", content: "hi", client_msg_id: "c1" });
  router.outgoing("b", { type: "message.edit", room: "r1", id: "m7", content: "fixed" });
  router.outgoing("b", { type: "reaction.add", room: "r1", id: "m8", emoji: "👍" });
  router.outgoing("a", { type: "message.send", room: "r1", content: "again", client_msg_id: "c2" });
  const targets = (frame) => router.route(frame).map(([to]) => to);
  assertEqual(targets({ type: "message.new", room: "r1", sequence: 5 }), [ALL]);
  assertEqual(targets({ type: "presence", user: 2, status: "online" }), [ALL]);
  assertEqual(targets({ type: "message.ack", room: "r1", client_msg_id: "c1", id: "m9" }), [["a"]]);
  assertEqual(targets({ type: "message.edit.ack", room: "r1", id: "m7" }), [["b"]]);
  assertEqual(targets({ type: "error", code: "rate_limited", ref: "m8" }), [["b"]]);
  assertEqual(targets({ type: "error", code: "invalid", ref: "c2" }), [["a"]]);
  // Answered already, or asked on an earlier connection: every tab (each ignores what it did not ask).
  assertEqual(targets({ type: "message.ack", room: "r1", client_msg_id: "c1", id: "m9" }), [ALL]);
  assertEqual(targets({ type: "error", code: "internal", ref: null }), [ALL]);
});

test("shared connection: a sync's batches go to the tab that asked, syncs answered in order", () => {
  const router = new FrameRouter();
  router.outgoing("a", { type: "sync", room: "r1", after_sequence: 3 });
  router.outgoing("b", { type: "sync", room: "r1", after_sequence: 9 });
  const batch = (hasMore) => ({ type: "sync.batch", room: "r1", events: [], has_more: hasMore, last_sequence: 10 });
  assertEqual(router.route(batch(true))[0][0], ["a"]);
  assertEqual(router.route(batch(false))[0][0], ["a"]);
  assertEqual(router.route(batch(false))[0][0], ["b"]);
  router.outgoing("a", { type: "sync", room: "r1", after_sequence: 10 });
  router.reset(); // a new connection
  assertEqual(router.route(batch(false))[0][0], ALL);
});

test("shared connection: boards are joined and left per tab, and a tab's update reaches the other tabs", () => {
  const router = new FrameRouter();
  assertEqual(router.outgoing("a", { type: "board.join", board: "b1", state_vector: "" }), true);
  assertEqual(router.outgoing("b", { type: "board.join", board: "b1", state_vector: "" }), true);
  assertEqual(router.route({ type: "board.state", board: "b1", sequence: 4 })[0][0], ["a"]);
  assertEqual(router.route({ type: "board.state", board: "b1", sequence: 4 })[0][0], ["b"]);
  assertEqual(router.route({ type: "board.awareness", board: "b1", state: null })[0][0], ["a", "b"]);
  router.outgoing("a", { type: "board.update", board: "b1", update: "AAE=", client_update_id: "u1" });
  assertEqual(router.route({ type: "board.update.ack", board: "b1", client_update_id: "u1", sequence: 5 }), [
    [["a"], { type: "board.update.ack", board: "b1", client_update_id: "u1", sequence: 5 }],
    [["b"], { type: "board.update", board: "b1", sequence: 5, update: "AAE=", user: null, client_update_id: "u1" }],
  ]);
  assertEqual(router.outgoing("a", { type: "board.leave", board: "b1" }), false); // b still has it open
  assertEqual(router.forgetTab("b"), [{ type: "board.leave", board: "b1" }]); // b closed: nobody has it
});

test("shared connection: a joining tab's session.ready has every room's number as of now", () => {
  const tracker = new ReadyTracker();
  assertEqual(tracker.snapshot(), null);
  tracker.note({ type: "session.ready", user: 1, rooms: { r1: 4, r2: 0 }, unread: { r1: 2 } });
  tracker.note({ type: "message.new", room: "r1", sequence: 5 });
  tracker.note({ type: "sync.batch", room: "r2", events: [], has_more: false, last_sequence: 3 });
  tracker.note({ type: "typing", room: "r1" });
  tracker.note({ type: "room.added", room: { id: "r3", last_sequence: 7 } });
  tracker.note({ type: "room.removed", room: "r2" });
  tracker.note({ type: "message.new", room: "r9", sequence: 1 }); // not one of ours
  assertEqual(tracker.snapshot(), { type: "session.ready", user: 1, rooms: { r1: 5, r3: 7 }, unread: null });
});
