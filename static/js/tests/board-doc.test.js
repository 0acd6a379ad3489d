// The board document (static/js/board/doc.js) and its sync (static/js/board/sync.js), with two
// or three local Y.Docs and a fake server standing in for the socket.
import { BoardDoc, fromBase64, toBase64, Y } from "../board/doc.js";
import { BoardSync, SequenceTracker, Throttle } from "../board/sync.js";
import { assert, assertEqual, FakeTimers, test } from "./harness.js";

/** Exchange every update between docs, both ways. */
function connect(...docs) {
  for (const a of docs) {
    a.doc.on("update", (update, origin) => {
      if (origin === "peer") return;
      for (const b of docs) if (b !== a) Y.applyUpdate(b.doc, update, "peer");
    });
  }
}

test("board doc: add, update, duplicate, reorder and delete; arrows follow and detach", () => {
  const doc = new BoardDoc({ user: 1 });
  const a = doc.add({ type: "rect", x: 0, y: 0, w: 100, h: 100 });
  const b = doc.add({ type: "rect", x: 300, y: 0, w: 100, h: 100 });
  const arrow = doc.add({ type: "arrow", x: 0, y: 0, points: [0, 0, 1, 1], from: a, to: b });
  assertEqual(doc.sorted().map((e) => e.id), [a, b, arrow], "new elements go on top");
  doc.update(b, { x: 500 });
  doc.updateMany(doc.arrowEndsFor([b]));
  assertEqual(doc.get(arrow).points, [0, 0, 400, 0], "stored arrow follows the moved shape");
  const copies = doc.duplicate([a, b, arrow]);
  assertEqual(copies.length, 3, "three copies");
  const copy = doc.get(copies[2]);
  assertEqual([copy.from, copy.to], [copies[0], copies[1]], "the copied arrow connects the copies");
  doc.reorder([a], "front");
  assertEqual(doc.sorted().at(-1).id, a, "a in front");
  doc.reorder([a], "back");
  assertEqual(doc.sorted()[0].id, a, "a at the back");
  doc.remove([b]);
  assertEqual(doc.get(arrow).to, null, "deleting a shape detaches arrows");
  assertEqual(doc.get(arrow).from, a, "the other end stays");
  assertEqual(doc.has(b), false, "b gone");
  doc.destroy();
});

test("board doc: a viewer's document changes nothing", () => {
  const doc = new BoardDoc({ user: 2, editable: false });
  assertEqual(doc.add({ type: "rect" }), null, "add refused");
  assertEqual(doc.size, 0, "empty");
  doc.destroy();
});

test("board doc: undo only undoes one's own changes", () => {
  const ann = new BoardDoc({ user: 1 });
  const ben = new BoardDoc({ user: 2 });
  connect(ann, ben);
  const shape = ann.add({ type: "rect", x: 0, y: 0, w: 10, h: 10 });
  ann.stopCapturing();
  ben.update(shape, { fill: "#f00" }); // Ben colours it
  const bens = ben.add({ type: "ellipse", x: 50, y: 50, w: 10, h: 10 });
  ann.stopCapturing();
  ann.update(shape, { x: 100 }); // Ann moves it
  ann.undo();
  assertEqual([ann.get(shape).x, ann.get(shape).fill], [0, "#f00"], "Ann's move undone, Ben's colour kept");
  ann.undo();
  assertEqual(ann.has(shape), false, "then Ann's creation");
  assertEqual(ann.has(bens), true, "Ben's own shape stays");
  ann.redo();
  assertEqual(ben.get(shape).fill, "#f00", "redo brings it back with Ben's colour");
  assertEqual(ann.toJSON(), ben.toJSON(), "both the same");
  ann.destroy();
  ben.destroy();
});

test("board doc: concurrent edits of one element merge; the same property converges", () => {
  const docs = [new BoardDoc({ user: 1 }), new BoardDoc({ user: 2 })];
  const id = docs[0].add({ type: "rect", x: 0, y: 0, w: 10, h: 10 });
  Y.applyUpdate(docs[1].doc, Y.encodeStateAsUpdate(docs[0].doc));
  docs[0].update(id, { x: 5, text: "mine" });
  docs[1].update(id, { fill: "#0f0", text: "yours" });
  const u0 = Y.encodeStateAsUpdate(docs[0].doc);
  const u1 = Y.encodeStateAsUpdate(docs[1].doc);
  Y.applyUpdate(docs[0].doc, u1);
  Y.applyUpdate(docs[1].doc, u0);
  assertEqual(docs[0].toJSON(), docs[1].toJSON(), "converged");
  const element = docs[0].get(id);
  assertEqual([element.x, element.fill], [5, "#0f0"], "different properties both kept");
  assert(["mine", "yours"].includes(element.text), "one writer wins the text");
});

test("board sync: sequence numbers, gaps and the awareness throttle", () => {
  const tracker = new SequenceTracker(3);
  assertEqual(tracker.note(4), false, "4 follows 3");
  assertEqual(tracker.note(6), true, "6 leaves a gap");
  assertEqual(tracker.note(5), false, "5 fills it");
  assertEqual(tracker.last, 6, "contiguous up to 6");
  tracker.note(9);
  tracker.reach(8);
  assertEqual([tracker.last, tracker.hasGap], [9, false], "a sync up to 8 makes 9 contiguous");
  const timers = new FakeTimers();
  let now = 0;
  const sent = [];
  const throttle = new Throttle((value) => sent.push(value), 50, timers, () => now);
  throttle.push(1);
  throttle.push(2);
  throttle.push(3);
  assertEqual(sent, [1], "the first goes at once, the rest wait");
  now = 50;
  timers.advance(50);
  assertEqual(sent, [1, 3], "then only the latest");
  now = 500;
  throttle.push(4);
  assertEqual(sent, [1, 3, 4], "after a pause: at once again");
});

/** A stand-in for the server: numbers updates, acks, dedupes client_update_id, broadcasts. */
class FakeServer {
  constructor() {
    this.doc = new Y.Doc();
    this.log = []; // {sequence, update, client_update_id, from}
    this.clients = new Map(); // name -> {sync, online, inbox}
  }

  add(name, sync) {
    this.clients.set(name, { sync, online: true });
  }

  frame(name, frame) {
    const client = this.clients.get(name);
    if (!client.online) return false;
    const deliver = (target, out) => queueMicrotask(() => this.clients.get(target).online && this.clients.get(target).sync.onFrame(out));
    if (frame.type === "board.join") {
      const vector = frame.state_vector ? fromBase64(frame.state_vector) : undefined;
      const update = toBase64(Y.encodeStateAsUpdate(this.doc, vector));
      deliver(name, { type: "board.state", board: "b", room: "r", sequence: this.log.length, update, awareness: [] });
    } else if (frame.type === "board.update") {
      const known = this.log.find((entry) => entry.client_update_id === frame.client_update_id);
      const entry = known || { sequence: this.log.length + 1, update: frame.update, client_update_id: frame.client_update_id, from: name };
      if (!known) {
        Y.applyUpdate(this.doc, fromBase64(frame.update));
        this.log.push(entry);
        for (const other of this.clients.keys()) {
          if (other !== name) deliver(other, { type: "board.update", board: "b", ...entry, user: { id: 0, username: name } });
        }
      }
      deliver(name, { type: "board.update.ack", board: "b", client_update_id: frame.client_update_id, sequence: entry.sequence });
    } else if (frame.type === "board.sync") {
      const updates = this.log.filter((entry) => entry.sequence > frame.after_sequence);
      deliver(name, { type: "board.updates", board: "b", updates, has_more: false, last_sequence: this.log.length });
    }
    return true;
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

async function flushAll(syncs) {
  for (let round = 0; round < 5; round++) {
    for (const sync of syncs) sync.outbox.flushDraft();
    await settle();
  }
}

test("board sync: offline edits are queued, resent on reconnect, applied once; all converge", async () => {
  const server = new FakeServer();
  const make = (name, user) => {
    const doc = new BoardDoc({ user });
    const sync = new BoardSync({ board: "b", boardDoc: doc, send: (frame) => server.frame(name, frame), me: { id: user } });
    server.add(name, sync);
    return { doc, sync };
  };
  const ann = make("ann", 1);
  const ben = make("ben", 2);
  ann.sync.connected();
  ben.sync.connected();
  await settle();
  const shape = ann.doc.add({ type: "rect", x: 0, y: 0, w: 10, h: 10 });
  await flushAll([ann.sync, ben.sync]);
  assertEqual(ben.doc.get(shape)?.x, 0, "Ben sees Ann's shape");
  // Ben goes offline and edits; Ann edits too.
  server.clients.get("ben").online = false;
  ben.sync.disconnected();
  ben.doc.update(shape, { text: "offline" });
  ben.doc.add({ type: "sticky", x: 5, y: 5, w: 20, h: 20, text: "later" });
  ann.doc.update(shape, { x: 42 });
  await flushAll([ann.sync, ben.sync]);
  assertEqual(ben.sync.outbox.size, 1, "Ben's edits wait as one entry");
  assertEqual(ben.doc.get(shape).x, 0, "Ben has not seen Ann's move yet");
  // Back online: join with the state vector, then resend.
  server.clients.get("ben").online = true;
  ben.sync.connected();
  await flushAll([ann.sync, ben.sync]);
  assertEqual(ben.sync.outbox.size, 0, "all acknowledged");
  assertEqual(ann.doc.toJSON(), ben.doc.toJSON(), "Ann and Ben converge");
  const serverDoc = new BoardDoc({ doc: server.doc });
  assertEqual(serverDoc.toJSON(), ann.doc.toJSON(), "and the server with them");
  const logged = server.log.length;
  // A resend of an update the server already has (its ack was lost) is not applied again.
  const again = server.log[server.log.length - 1];
  server.frame("ben", { type: "board.update", board: "b", update: again.update, client_update_id: again.client_update_id });
  await settle();
  assertEqual(server.log.length, logged, "a resend is acked, not logged twice");
  assertEqual([ann.sync.sequence, ben.sync.sequence], [logged, logged], "both have every number");
  ann.sync.leave();
  ben.sync.leave();
});

test("board sync: a lost board.update is noticed by the next number and fetched with board.sync", async () => {
  const server = new FakeServer();
  const make = (name, user) => {
    const doc = new BoardDoc({ user });
    const sync = new BoardSync({ board: "b", boardDoc: doc, send: (frame) => server.frame(name, frame), me: { id: user } });
    server.add(name, sync);
    return { doc, sync };
  };
  const ann = make("ann", 1);
  const ben = make("ben", 2);
  ann.sync.connected();
  ben.sync.connected();
  await settle();
  // The network loses the first update on its way to Ben.
  const deliver = ben.sync.onFrame.bind(ben.sync);
  let dropped = 0;
  ben.sync.onFrame = (frame) => (frame.type === "board.update" && !dropped++ ? true : deliver(frame));
  const first = ann.doc.add({ type: "rect", x: 0, y: 0, w: 10, h: 10 });
  await flushAll([ann.sync]);
  assertEqual([dropped, ben.doc.has(first)], [1, false], "lost");
  const second = ann.doc.add({ type: "ellipse", x: 0, y: 0, w: 10, h: 10 });
  await flushAll([ann.sync]);
  assert(ben.sync.tracker.hasGap, "number 2 without 1 is a gap");
  const sent = [];
  const send = ben.sync.sendFrame;
  ben.sync.sendFrame = (frame) => (sent.push(frame.type), send(frame));
  for (let i = 0; i < 100 && !ben.doc.has(first); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert(sent.includes("board.sync"), "Ben asked for what he missed");
  assertEqual([ben.doc.has(first), ben.doc.has(second), ben.sync.sequence, ben.sync.tracker.hasGap], [true, true, 2, false], "filled");
  assertEqual(ann.doc.toJSON(), ben.doc.toJSON(), "the same board");
  ann.sync.leave();
  ben.sync.leave();
});

test("board view: only what is in or near the view is drawn; panning draws the rest, in z order", async () => {
  const { BoardView } = await import("../board/render.js");
  const { StaticBoard } = await import("../board/doc.js");
  const root = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  root.setAttribute("width", "400");
  root.setAttribute("height", "300");
  document.body.append(root);
  const rect = (id, x, z) => ({ id, type: "rect", x, y: 10, w: 50, h: 50, z });
  const board = new StaticBoard([rect("near", 10, "b"), rect("far", 5000, "a"), rect("farther", 9000, "c")]);
  const view = new BoardView(root);
  view.setView({ x: 0, y: 0, zoom: 1 });
  view.renderAll(board);
  const drawn = () => [...root.querySelectorAll(".board-elements > g")].map((node) => node.dataset.id);
  assertEqual(drawn(), ["near"], "only the element in view");
  view.setView({ x: 4900, y: 0, zoom: 1 });
  assertEqual(drawn(), ["far", "near"], "panning draws what comes into view, below 'near' by z");
  view.setView({ x: 0, y: 0, zoom: 0.04 });
  assertEqual(drawn(), ["far", "near", "farther"], "zooming out draws everything");
  root.remove();
});

test("board sync: a board.awareness.batch sets, replaces and removes peers in one call", () => {
  const doc = new BoardDoc({ user: 1 });
  const calls = [];
  const sync = new BoardSync({ board: "b", boardDoc: doc, send: () => false, me: { id: 1 }, onAwareness: (peers) => calls.push(new Map(peers)) });
  const ann = { id: 2, username: "ann" };
  const ben = { id: 3, username: "ben" };
  sync.onFrame({ type: "board.awareness", board: "b", user: ann, session: "s-ann", state: { cursor: { x: 1, y: 1 } } });
  const handled = sync.onFrame({
    type: "board.awareness.batch",
    board: "b",
    states: [
      { user: ben, session: "s-ben", state: { cursor: { x: 5, y: 6 } } },
      { user: ann, session: "s-ann", state: null },
    ],
  });
  assert(handled, "the batch is this board's frame");
  assertEqual(calls.length, 2, "one repaint for the whole batch");
  assertEqual([...calls[1].keys()], ["s-ben"], "Ann left, Ben is here");
  assertEqual(calls[1].get("s-ben").state.cursor, { x: 5, y: 6 }, "Ben's latest state");
  assertEqual(sync.onFrame({ type: "board.awareness.batch", board: "other", states: [] }), false, "another board's");
  sync.leave();
  doc.destroy();
});

test("board sync over SSE: the stream joins the board, awareness names our session, our own echo is left out", () => {
  const doc = new BoardDoc({ user: 7 });
  const sent = [];
  const gone = [];
  const sync = new BoardSync({
    board: "b",
    boardDoc: doc,
    send: (frame) => (sent.push(frame), true),
    me: { id: 7 },
    onGone: (frame, { certain }) => gone.push([frame.code, certain]),
  });
  sync.setTransport("sse");
  sync.connected({ type: "session.ready", rooms: {} });
  assertEqual(sent, [], "a fresh stream: no board.join, its own board.state follows");
  assert(!sync.joined, "not joined yet");
  const other = new Y.Doc();
  other.getMap("elements").set("e1", new Y.Map());
  const mine = { user: { id: 7 }, session: sync.ownSession, state: { cursor: null } };
  sync.onFrame({
    type: "board.state",
    board: "b",
    sequence: 3,
    update: toBase64(Y.encodeStateAsUpdate(other)),
    awareness: [{ user: { id: 2 }, session: "s2", state: { cursor: null } }, mine],
  });
  assert(sync.joined && doc.has("e1"), "joined by the stream's board.state");
  assertEqual(sync.sequence, 3);
  assertEqual([...sync.peers.keys()], ["s2"], "our own REST session is no peer");
  sync.setAwareness({ cursor: { x: 1, y: 2 } });
  assertEqual(sent.at(-1), { type: "board.awareness", board: "b", state: { cursor: { x: 1, y: 2 } }, session: sync.sessionKey });
  assertEqual(sync.ownSession, `rest-7-${sync.sessionKey}`);
  sync.onFrame({ type: "board.awareness", board: "b", ...mine });
  assertEqual([...sync.peers.keys()], ["s2"], "the stream's echo of ours is left out");
  // A cut: the resumed stream goes on from its position (by number), so the page is joined at once.
  sync.disconnected();
  sync.connected({ type: "session.ready", rooms: {}, resumed: true });
  assert(sync.joined, "joined at once");
  assert(!sent.some((frame) => frame.type === "board.join"), "never a board.join");
  // Deleted meanwhile: the stream's error names the board.
  sync.onFrame({ type: "error", code: "not_found", message: "Not found.", ref: null, board: "b" });
  assertEqual(gone, [["not_found", true]]);
  sync.leave();
  assertEqual(sent.at(-1), { type: "board.leave", board: "b", session: sync.sessionKey });
});
