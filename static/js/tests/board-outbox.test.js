// The board's outbox (static/js/board/outbox.js): batching, resend until acked, offline merging.
import { BoardOutbox } from "../board/outbox.js";
import { assertEqual, FakeTimers, test } from "./harness.js";

function outbox({ maxBytes = 1000 } = {}) {
  const timers = new FakeTimers();
  const sent = [];
  let ready = false;
  let n = 0;
  const box = new BoardOutbox({
    send: (entry) => {
      if (!ready) return false;
      sent.push({ id: entry.id, update: [...entry.update] });
      return true;
    },
    merge: (updates) => Uint8Array.from(updates.flatMap((update) => [...update])),
    newId: () => `id${++n}`,
    batchMs: 40,
    maxBytes,
    timers,
  });
  return { box, timers, sent, setReady: (value) => (ready = value) };
}

const bytes = (...values) => Uint8Array.from(values);

test("board outbox: updates close together go as one entry, sent when joined", () => {
  const { box, timers, sent, setReady } = outbox();
  setReady(true);
  box.connect();
  box.push(bytes(1));
  box.push(bytes(2));
  assertEqual(sent, [], "nothing before the batch closes");
  timers.advance(40);
  assertEqual(sent, [{ id: "id1", update: [1, 2] }], "one merged entry");
  box.push(bytes(3));
  timers.advance(40);
  assertEqual(sent.map((entry) => entry.id), ["id1", "id2"], "the next batch is a new entry");
  assertEqual(box.size, 2, "both pending");
  box.acknowledged("id1");
  assertEqual(box.pendingIds, ["id2"], "acked entries go");
  assertEqual(box.acknowledged("nope"), false, "an unknown ack is ignored");
});

test("board outbox: unacked entries are resent with the same id after a reconnect", () => {
  const { box, timers, sent, setReady } = outbox();
  setReady(true);
  box.connect();
  box.push(bytes(1));
  timers.advance(40);
  box.disconnect();
  setReady(false);
  box.push(bytes(2));
  timers.advance(40);
  box.push(bytes(3));
  timers.advance(40);
  assertEqual(sent.length, 1, "offline: nothing sent");
  assertEqual(box.size, 3, "three entries wait");
  setReady(true);
  box.connect();
  // The sent one goes again under its id (the server dedupes); the offline ones merged into one.
  assertEqual(sent.slice(1), [
    { id: "id1", update: [1] },
    { id: "id2", update: [2, 3] },
  ], "resent in order");
  box.acknowledged("id1");
  box.acknowledged("id1"); // a duplicate ack
  box.acknowledged("id2");
  assertEqual(box.size, 0, "all acknowledged");
});

test("board outbox: merging respects the size cap; refused entries are dropped", () => {
  const { box, timers, sent, setReady } = outbox({ maxBytes: 4 });
  box.push(bytes(1, 1));
  box.push(bytes(2, 2));
  box.push(bytes(3, 3));
  box.push(bytes(9, 9, 9, 9, 9)); // bigger than the cap on its own
  timers.advance(40);
  setReady(true);
  box.connect();
  assertEqual(sent.map((entry) => entry.update), [[1, 1, 2, 2], [3, 3], [9, 9, 9, 9, 9]], "chunks of at most 4 bytes");
  box.refused(sent[2].id);
  assertEqual(box.size, 2, "the refused one is gone");
});
