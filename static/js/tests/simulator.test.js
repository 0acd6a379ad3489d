// The simulator's pure logic on the board (static/js/simulator/model.js).
import { chartPath, figuresOf, liveBottleneck, RunTracker, trafficBand, utilisationBand, utilisationColour } from "../simulator/model.js";
import { assert, assertEqual, test } from "./harness.js";

test("simulator: utilisation colours run green to red and bands name the load", () => {
  assertEqual(utilisationColour(0), "hsl(130 75% 88%)", "idle");
  assertEqual(utilisationColour(0.5), "hsl(65 75% 80%)", "half");
  assertEqual(utilisationColour(1), "hsl(0 75% 72%)", "saturated");
  assertEqual(utilisationColour(3), utilisationColour(1), "over 100 % is as red as 100 %");
  assertEqual(utilisationColour(null), null, "no figure, no colour");
  assertEqual(utilisationColour(Number.NaN), null, "NaN");
  assertEqual([0.1, 0.6, 0.9, 1.2, undefined].map(utilisationBand), ["low", "mid", "high", "over", "none"], "bands");
});

test("simulator: traffic bands are proportional to the busiest connector", () => {
  assertEqual(trafficBand(0, 100), 0, "no traffic");
  assertEqual(trafficBand(100, 100), 4, "the busiest");
  assertEqual(trafficBand(1, 100), 1, "a trickle still moves");
  assertEqual(trafficBand(50, 100), 2, "half");
  assertEqual(trafficBand(10, 0), 0, "nothing busy");
  assertEqual(trafficBand(null, 100), 0, "no figure");
});

test("simulator: chart paths scale to the box, y up, with gaps for missing values", () => {
  assertEqual(chartPath([0, 5, 10], { width: 100, height: 50 }), { d: "M0 50L50 25L100 0", max: 10 }, "three points");
  assertEqual(chartPath([2, null, 2], { width: 10, height: 10, max: 4 }).d, "M0 5M10 5", "a gap");
  assertEqual(chartPath([8], { width: 10, height: 10, max: 4 }).d, "M0 0", "clamped to the top");
  assertEqual(chartPath([], { width: 10, height: 10 }), { d: "", max: 1 }, "empty");
  assertEqual(chartPath([1, 1], { width: 30, height: 10, xs: [0, 3] }).d, "M0 0L30 0", "x from the times");
});

test("simulator: progress merges at most once, newest wins, and finished runs stay finished", () => {
  const tracker = new RunTracker();
  const progress = (t, util) => ({ t, fraction: t / 60, components: { api: { utilisation: util, throughput_rps: 100, p99_ms: 20 } }, connectors: { "lb->api": { rps: 100 } }, end_to_end: { p99_ms: 30, throughput_rps: 100 } });
  tracker.upsert({ id: "r1", status: "queued", created_at: "2026-01-01T00:00:00Z", progress: null, summary: null });
  tracker.progress({ run: "r1", status: "running", progress: null }); // the worker took it
  tracker.progress({ run: "r1", status: "running", progress: progress(1, 0.5) });
  tracker.progress({ run: "r1", status: "running", progress: progress(2, 0.9) });
  tracker.upsert({ id: "r1", status: "running", progress: progress(1, 0.5) }); // an older REST read
  const run = tracker.runs.get("r1");
  tracker.upsert({ id: "r1", status: "queued" }); // the start's answer, after the first progress
  assertEqual(run.status, "running", "a run never goes back to queued");
  assertEqual(run.progress.t, 2, "the newest progress is kept");
  assertEqual(run.history.t, [1, 2], "one history point per snapshot");
  assertEqual(run.history.utilisation.api, [0.5, 0.9], "utilisation history");
  assertEqual(tracker.active().id, "r1", "active");
  tracker.finished({ run: "r1", status: "cancelled", summary: { components: { api: { utilisation: 0.7 } }, bottleneck: { component_id: "api", saturated: false, explanation: "api is busiest" } } });
  tracker.progress({ run: "r1", status: "running", progress: progress(3, 0.95) }); // late, after the end
  tracker.upsert({ id: "r1", status: "running" }); // a stale list
  assertEqual(run.status, "cancelled", "finished stays finished");
  assertEqual(run.history.t, [1, 2], "no history after the end");
  assertEqual(tracker.active(), null, "nothing active");
  tracker.upsert({ id: "r2", status: "done", created_at: "2026-01-02T00:00:00Z" });
  assertEqual(tracker.list().map((r) => r.id), ["r2", "r1"], "newest first");
});

test("simulator: figures come from the live progress, then from the summary with its bottleneck", () => {
  const live = figuresOf({ status: "running", progress: { components: { api: { utilisation: 0.97, throughput_rps: 900, p99_ms: 120 }, db: { utilisation: 0.2 } }, connectors: { "a->b": { rps: 5 }, bad: {} } } });
  assertEqual(live.components.api, { utilisation: 0.97, throughput_rps: 900, p99_ms: 120 }, "component figures");
  assertEqual(live.connectors, { "a->b": { rps: 5 } }, "connectors with a figure");
  assertEqual(live.bottleneck.component_id, "api", "the hottest is named while live");
  assert(live.bottleneck.live, "marked live");
  assertEqual(liveBottleneck({ a: { utilisation: 0.3 } }), null, "nothing hot, no bottleneck");
  const done = figuresOf({ status: "done", progress: { components: {} }, summary: { components: { db: { utilisation: 1.0 } }, bottleneck: { component_id: "db", saturated: true, explanation: "the database saturated" } } });
  assertEqual(done.bottleneck, { component_id: "db", explanation: "the database saturated", saturated: true, live: false }, "the engine's bottleneck");
  assertEqual(figuresOf({ status: "queued", progress: null, summary: null }), null, "nothing yet");
});
