// The live connection's transports (transports.js): the REST bridge that stands in for the
// socket's writes over SSE and long-polling, and the socket's ping rule.
import { PollTransport, RestBridge, SseTransport, WebSocketTransport } from "../transports.js";
import { Connection } from "../live.js";
import { assert, assertEqual, test } from "./harness.js";

/** Run `fn` with window.fetch answering from `answer(url, init)`; returns the requests made. */
async function withFetch(answer, fn) {
  const requests = [];
  const real = window.fetch;
  window.fetch = async (url, init = {}) => {
    requests.push({ url, method: init.method || "GET", body: init.body ? JSON.parse(init.body) : null });
    return answer(url, init);
  };
  try {
    await fn(requests);
  } finally {
    window.fetch = real;
  }
  return requests;
}

const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
async function until(condition) {
  for (let i = 0; i < 50 && !condition(); i += 1) await settle();
}

const message = { id: "m1", room: "r1", sequence: 4, client_msg_id: "c1", content: "hi" };

test("over REST, a send is a POST and its answer the socket's message.ack", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  const requests = await withFetch(
    () => json(201, message),
    async () => {
      assert(bridge.send({ type: "message.send", room: "r1", content: "hi", client_msg_id: "c1" }), "sent");
      await until(() => frames.length);
    },
  );
  assertEqual(requests, [{ url: "/api/v1/rooms/r1/messages/", method: "POST", body: { content: "hi", client_msg_id: "c1" } }]);
  assertEqual(frames, [{ type: "message.ack", room: "r1", id: "m1", client_msg_id: "c1", message }]);
});

test("over REST, a thread reply keeps reply_to and a reaction is answered with reaction.ack", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  const requests = await withFetch(
    () => json(200, message),
    async () => {
      bridge.send({ type: "message.send", room: "r1", content: "hi", client_msg_id: "c1", reply_to: "root" });
      bridge.send({ type: "reaction.remove", room: "r1", id: "m1", emoji: "👍" });
      await until(() => frames.length === 2);
    },
  );
  assertEqual(
    requests.map((request) => [request.method, request.url, request.body]),
    [
      ["POST", "/api/v1/rooms/r1/messages/", { content: "hi", client_msg_id: "c1", reply_to: "root" }],
      ["DELETE", `/api/v1/rooms/r1/messages/m1/reactions/?emoji=${encodeURIComponent("👍")}`, null],
    ],
  );
  assertEqual(frames.map((frame) => frame.type).sort(), ["message.ack", "reaction.ack"]);
});

test("over REST, a refusal is the socket's error frame about the same ref", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  await withFetch(
    () => json(429, { error: { code: "rate_limited", message: "Slow down.", retry_after_ms: 1500 } }),
    async () => {
      bridge.send({ type: "message.edit", room: "r1", id: "m1", content: "hello" });
      await until(() => frames.length);
    },
  );
  assertEqual(frames, [{ type: "error", code: "rate_limited", message: "Slow down.", retry_after_ms: 1500, ref: "m1" }]);
});

test("over REST, a proxy's answer that is not the API's asks to retry", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  await withFetch(
    () => new Response("<html>Bad gateway</html>", { status: 502 }),
    async () => {
      bridge.send({ type: "message.send", room: "r1", content: "hi", client_msg_id: "c1" });
      await until(() => frames.length);
    },
  );
  assertEqual([frames[0].type, frames[0].code, frames[0].ref, frames[0].retry_after_ms], ["error", "unavailable", "c1", 2000]);
});

test("over REST, no network means the connection is dead too", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  await withFetch(
    () => Promise.reject(new TypeError("Failed to fetch")),
    async () => {
      bridge.send({ type: "message.delete", room: "r1", id: "m1" });
      await until(() => frames.length);
    },
  );
  assertEqual(frames, ["dead"]);
});

test("over REST, a sync reads every page of changes as sync.batch frames", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  const pages = {
    3: { results: [{ type: "message.new", sequence: 4 }], has_more: true, last_sequence: 4 },
    4: { results: [{ type: "message.edit", sequence: 5 }], has_more: false, last_sequence: 5 },
  };
  const requests = await withFetch(
    (url) => json(200, pages[new URL(url, location.href).searchParams.get("after_sequence")]),
    async () => {
      bridge.send({ type: "sync", room: "r1", after_sequence: 3 });
      await until(() => frames.length === 2);
    },
  );
  assertEqual(
    requests.map((request) => request.url),
    ["/api/v1/rooms/r1/changes/?after_sequence=3", "/api/v1/rooms/r1/changes/?after_sequence=4"],
  );
  assertEqual(frames, [
    { type: "sync.batch", room: "r1", events: pages[3].results, has_more: true, last_sequence: 4 },
    { type: "sync.batch", room: "r1", events: pages[4].results, has_more: false, last_sequence: 5 },
  ]);
});

test("over REST, receipts and typing go, and simulation frames are left to the caller", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  const requests = await withFetch(
    (url) => (url.endsWith("typing/") ? new Response(null, { status: 204 }) : json(200, { delivered_sequence: 4, read_sequence: 4 })),
    async () => {
      assert(bridge.send({ type: "receipt", room: "r1", read_sequence: 4 }), "receipt sent");
      assert(bridge.send({ type: "heartbeat", active: true }), "heartbeat needs nothing");
      assert(bridge.send({ type: "typing", room: "r1" }), "typing sent");
      assert(!bridge.send({ type: "simulation.start", board: "b1" }), "simulation frames not sent");
      await settle();
      await settle();
    },
  );
  assertEqual(requests, [
    { url: "/api/v1/rooms/r1/receipts/", method: "POST", body: { read_sequence: 4 } },
    { url: "/api/v1/rooms/r1/typing/", method: "POST", body: null },
  ]);
  assertEqual(frames, []); // a 204 is no error
});

test("over REST, a board's updates go one at a time in order and are acked as on the socket", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  let open = 0;
  let most = 0;
  const requests = await withFetch(
    async (url, init) => {
      open += 1;
      most = Math.max(most, open);
      await settle(); // the first is still in flight when the second is sent
      open -= 1;
      const body = JSON.parse(init.body);
      if (body.client_update_id === "u3") return json(403, { error: { code: "forbidden", message: "Viewers can watch this board but not change it." } });
      return json(201, { board: "b1", client_update_id: body.client_update_id, sequence: { u1: 7, u2: 8 }[body.client_update_id] });
    },
    async () => {
      for (const id of ["u1", "u2", "u3"]) assert(bridge.send({ type: "board.update", board: "b1", update: "AAA=", client_update_id: id }), "sent");
      await until(() => frames.length === 3);
    },
  );
  assertEqual(most, 1); // one at a time
  assertEqual(requests.map((r) => [r.url, r.body.client_update_id]), [
    ["/api/v1/boards/b1/updates/", "u1"],
    ["/api/v1/boards/b1/updates/", "u2"],
    ["/api/v1/boards/b1/updates/", "u3"],
  ]);
  assertEqual(frames[0], { type: "board.update.ack", board: "b1", client_update_id: "u1", sequence: 7 });
  assertEqual(frames[1], { type: "board.update.ack", board: "b1", client_update_id: "u2", sequence: 8 });
  assertEqual([frames[2].type, frames[2].code, frames[2].ref], ["error", "forbidden", "u3"]);
});

test("over REST, a board sync past the compacted log gets the whole state; awareness names its session", async () => {
  const frames = [];
  const bridge = new RestBridge({ deliver: (frame) => frames.push(frame), onDead: () => frames.push("dead") });
  const requests = await withFetch(
    (url) => {
      if (url.includes("/updates/?after_sequence=2")) return json(409, { error: { code: "compacted", message: "…" } });
      if (url.includes("/updates/")) return json(200, { updates: [{ sequence: 6, update: "AA==" }], has_more: false, last_sequence: 6 });
      if (url.endsWith("/state/")) return json(200, { board: "b1", sequence: 9, requested: null, update: "BB==" });
      return json(200, { session: "rest-7-k1" });
    },
    async () => {
      assert(bridge.send({ type: "board.sync", board: "b1", after_sequence: 5 }), "sync sent");
      assert(bridge.send({ type: "board.sync", board: "b1", after_sequence: 2 }), "sync sent");
      assert(bridge.send({ type: "board.awareness", board: "b1", session: "k1", state: { cursor: { x: 1, y: 2 } } }), "awareness sent");
      assert(!bridge.send({ type: "board.awareness", board: "b1", state: {} }), "awareness needs a session");
      await until(() => frames.length === 2);
      await settle();
    },
  );
  assertEqual(requests.map((r) => [r.method, r.url, r.body]), [
    ["GET", "/api/v1/boards/b1/updates/?after_sequence=5", null],
    ["GET", "/api/v1/boards/b1/updates/?after_sequence=2", null],
    ["POST", "/api/v1/boards/b1/awareness/", { session: "k1", state: { cursor: { x: 1, y: 2 } } }],
    ["GET", "/api/v1/boards/b1/state/", null],
  ]);
  assertEqual(frames, [
    { type: "board.updates", board: "b1", updates: [{ sequence: 6, update: "AA==" }], has_more: false, last_sequence: 6 },
    { type: "board.state", board: "b1", sequence: 9, update: "BB==", awareness: [] },
  ]);
});

/** A WebSocketTransport on a fake, ready socket (not opened: the test drives check()). */
function readySocket() {
  const sent = [];
  const closes = [];
  const transport = new WebSocketTransport({ onClose: (event) => closes.push(event.code) });
  transport.ws = { readyState: WebSocket.OPEN, send: (text) => sent.push(JSON.parse(text)), close() {} };
  transport.ready = true;
  transport.heard();
  return { transport, sent, closes };
}

test("an idle socket pings only after a minute of silence", () => {
  const { transport, sent } = readySocket();
  const heard = transport.lastHeard;
  transport.send({ type: "heartbeat", active: false }); // expects no answer: no wait starts
  transport.check(heard + 59_000);
  assertEqual(sent.map((frame) => frame.type), ["heartbeat"]);
  transport.check(heard + 60_000);
  assertEqual(sent.map((frame) => frame.type), ["heartbeat", "ping"]);
});

test("an unanswered send pings after 3 s, and a silent ping drops the socket 6 s later", () => {
  const { transport, sent, closes } = readySocket();
  transport.send({ type: "message.send", room: "r1", content: "hi", client_msg_id: "c1" });
  const since = transport.waitingSince;
  transport.check(since + 2999);
  assertEqual(sent.length, 1);
  transport.check(since + 3000);
  assertEqual(sent.at(-1), { type: "ping" });
  transport.check(since + 8999);
  assertEqual(closes, []);
  transport.check(since + 9000);
  assertEqual(closes, [1006]);
});

test("anything heard after a ping proves the socket alive", () => {
  const { transport, sent, closes } = readySocket();
  transport.send({ type: "sync", room: "r1", after_sequence: 0 });
  const since = transport.waitingSince;
  transport.check(since + 3000);
  assertEqual(sent.at(-1), { type: "ping" });
  transport.heard(since + 3500); // e.g. the sync.batch, before the pong
  transport.check(since + 20_000);
  assertEqual(closes, []);
  assertEqual(sent.length, 2); // no second ping: nothing is waiting any more
});

// -- resuming SSE and long-polling from the last position the page was given -------------------

test("a resumed event stream asks for the last event's id and reports each new id once handed on", () => {
  const sources = [];
  const real = window.EventSource;
  window.EventSource = class {
    constructor(url) {
      this.url = url;
      this.listeners = {};
      sources.push(this);
    }
    addEventListener(type, fn) {
      this.listeners[type] = fn;
    }
    close() {}
  };
  const seen = [];
  try {
    const transport = new SseTransport({
      resume: "k3x9c1v0qz2m-0.1-2a",
      onReady: (frame) => seen.push(["ready", frame]),
      onFrame: (frame) => seen.push(["frame", frame.type]),
      onPosition: (id) => seen.push(["position", id]),
    });
    transport.open();
    const source = sources[0];
    assertEqual(source.url, "/api/v1/events/?last_event_id=k3x9c1v0qz2m-0.1-2a");
    source.listeners.open();
    source.listeners.message({ data: '{"type":"message.new","room":"r1","sequence":43}', lastEventId: "k3x9c1v0qz2m-0.1-2b" });
    source.listeners.message({ data: '{"type":"typing","room":"r1"}', lastEventId: "k3x9c1v0qz2m-0.1-2b" });
    transport.close();
  } finally {
    window.EventSource = real;
  }
  assertEqual(seen, [
    ["ready", null], // accepted: live.js gives the page a session.ready of its own numbers
    ["frame", "message.new"],
    ["position", "k3x9c1v0qz2m-0.1-2b"],
    ["frame", "typing"],
    ["position", "k3x9c1v0qz2m-0.1-2b"],
  ]);
});

test("a resumed long-poll polls from its cursor, is ready once /me/ answers, and moves to each answer's cursor", async () => {
  const seen = [];
  let transport;
  let polls = 0;
  const requests = await withFetch(
    (url) => {
      if (url === "/api/v1/me/") return json(200, { id: 1 });
      polls += 1;
      if (polls === 1) return json(200, { cursor: "k-0.1-2b", events: [{ type: "message.new", room: "r1", sequence: 43 }] });
      return new Promise(() => {}); // the next poll waits
    },
    async () => {
      transport = new PollTransport({
        resume: "k-0.1-2a",
        onReady: (frame) => seen.push(["ready", frame]),
        onFrame: (frame) => seen.push(["frame", frame.type]),
        onPosition: (id) => seen.push(["position", id]),
      });
      transport.open();
      await until(() => polls === 2);
      transport.close();
    },
  );
  assertEqual(requests.map((request) => request.url).sort(), ["/api/v1/me/", "/api/v1/poll/?cursor=k-0.1-2a", "/api/v1/poll/?cursor=k-0.1-2b"]);
  assertEqual(seen, [["ready", null], ["frame", "message.new"], ["position", "k-0.1-2b"]]);
});

test("a stream in use is reopened from its position when the page opens a board, and the page resumes", () => {
  const sources = [];
  const real = window.EventSource;
  window.EventSource = class {
    constructor(url) {
      this.url = url;
      this.listeners = {};
      this.closed = false;
      sources.push(this);
    }
    addEventListener(type, fn) {
      this.listeners[type] = fn;
    }
    close() {
      this.closed = true;
    }
  };
  const saved = sessionStorage.getItem("parley.live.transport");
  sessionStorage.setItem("parley.live.transport", JSON.stringify({ kind: "sse", at: Date.now() }));
  const frames = [];
  const connection = new Connection({ fallback: true, onFrame: (frame) => frames.push(frame) });
  try {
    connection.start({ listen: false });
    assertEqual(sources.map((source) => source.url), ["/api/v1/events/"]);
    const ready = { type: "session.ready", user: 1, rooms: { r1: 3 }, unread: {} };
    sources[0].listeners.message({ data: JSON.stringify(ready), lastEventId: "s-0.1-3" });
    connection.setBoards(["b1"]);
    assertEqual(sources.map((source) => [source.url, source.closed]), [
      ["/api/v1/events/", true],
      ["/api/v1/events/?last_event_id=s-0.1-3&boards=b1", false],
    ]);
    sources[1].listeners.open(); // the server took the position: the page gets its own numbers
    assertEqual(frames.map((frame) => [frame.type, frame.resumed ?? false]), [["session.ready", false], ["session.ready", true]]);
    assertEqual(frames[1].rooms, { r1: 3 });
    connection.setBoards(["b1"]);
    assertEqual(sources.length, 2, "the same boards: nothing reopened");
  } finally {
    connection.stop();
    window.EventSource = real;
    if (saved === null) sessionStorage.removeItem("parley.live.transport");
    else sessionStorage.setItem("parley.live.transport", saved);
  }
});
