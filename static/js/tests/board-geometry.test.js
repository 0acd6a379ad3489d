// Pure geometry of boards (static/js/board/geometry.js).
import {
  borderPoint,
  bounds,
  compareZ,
  connectorEnds,
  fitView,
  hitTest,
  idsInBox,
  keyBetween,
  resizeBox,
  rotationBetween,
  rotationOf,
  scaleInto,
  snapRotation,
  toBoard,
  toScreen,
  topmostAt,
  zoomAt,
} from "../board/geometry.js";
import { assert, assertEqual, test } from "./harness.js";

const rect = (id, x, y, w, h, extra = {}) => ({ id, type: "rect", x, y, w, h, z: "a", ...extra });
const near = (a, b, what) => assert(Math.abs(a - b) < 1e-6, `${what}: ${a} ≈ ${b}`);

test("board: hit testing follows each shape's outline", () => {
  const box = rect("r", 0, 0, 100, 50);
  assert(hitTest(box, { x: 50, y: 25 }), "inside a rectangle");
  assert(hitTest(box, { x: 103, y: 25 }, 4), "within tolerance of its edge");
  assert(!hitTest(box, { x: 110, y: 25 }, 4), "outside");
  const ellipse = { ...box, type: "ellipse" };
  assert(hitTest(ellipse, { x: 50, y: 25 }), "ellipse centre");
  assert(!hitTest(ellipse, { x: 3, y: 3 }, 0), "an ellipse's corner is empty");
  const diamond = { ...box, type: "diamond" };
  assert(hitTest(diamond, { x: 50, y: 5 }, 0), "diamond's top");
  assert(!hitTest(diamond, { x: 10, y: 5 }, 0), "outside the diamond");
  const pen = { id: "p", type: "pen", x: 10, y: 10, points: [0, 0, 100, 0, 100, 100] };
  assert(hitTest(pen, { x: 60, y: 12 }, 4), "near a pen segment");
  assert(hitTest(pen, { x: 108, y: 50 }, 4), "near its second segment");
  assert(!hitTest(pen, { x: 60, y: 60 }, 4), "far from the stroke");
  const flipped = rect("f", 100, 100, -50, -20); // drawn up and left
  assert(hitTest(flipped, { x: 70, y: 90 }, 0), "a negative size counts from the other side");
});

test("board: the topmost element under a point wins; a box selects what it contains", () => {
  const a = rect("a", 0, 0, 100, 100, { z: "a" });
  const b = rect("b", 50, 50, 100, 100, { z: "b" });
  const sorted = [b, a].sort(compareZ);
  assertEqual(topmostAt(sorted, { x: 75, y: 75 }).id, "b", "overlap");
  assertEqual(topmostAt(sorted, { x: 10, y: 10 }).id, "a", "only a");
  assertEqual(topmostAt(sorted, { x: 500, y: 500 }), null, "nothing");
  assertEqual(topmostAt(sorted, { x: 75, y: 75 }, 4, () => null, (e) => e.id === "b").id, "a", "skipping b");
  assertEqual(idsInBox(sorted, { x: -1, y: -1, w: 102, h: 102 }), ["a"], "box around a only");
  assertEqual(idsInBox(sorted, { x: -1, y: -1, w: 200, h: 200 }), ["a", "b"], "box around both");
  const sameZ = [rect("y", 0, 0, 1, 1, { z: "m" }), rect("x", 0, 0, 1, 1, { z: "m" })].sort(compareZ);
  assertEqual(sameZ.map((e) => e.id), ["x", "y"], "equal z: ordered by id");
});

test("board: connector ends sit on the attached shapes' outlines and follow them", () => {
  const left = rect("l", 0, 0, 100, 100);
  const right = { ...rect("r", 300, 0, 100, 100), type: "ellipse" };
  const shapes = { l: left, r: right };
  const lookup = (id) => shapes[id] || null;
  const arrow = { id: "ar", type: "arrow", x: 0, y: 0, points: [0, 0, 10, 10], from: "l", to: "r" };
  let ends = connectorEnds(arrow, lookup);
  assertEqual(ends.start, { x: 100, y: 50 }, "leaves the rectangle on its right side");
  assertEqual(ends.end, { x: 300, y: 50 }, "meets the ellipse on its left");
  shapes.r = { ...right, x: 0, y: 300 }; // moved below the rectangle
  ends = connectorEnds(arrow, lookup);
  assertEqual(ends.start, { x: 50, y: 100 }, "start moved to the bottom side");
  near(ends.end.y, 300, "end at the ellipse's top");
  near(ends.end.x, 50, "end x");
  const diamond = { id: "d", type: "diamond", x: 0, y: 0, w: 100, h: 100 };
  const p = borderPoint(diamond, { x: 100, y: 100 });
  near(p.x, 75, "diamond edge x");
  near(p.y, 75, "diamond edge y");
  const loose = { id: "x", type: "arrow", x: 5, y: 5, points: [0, 0, 50, 0], from: "gone", to: null };
  assertEqual(connectorEnds(loose, lookup), { start: { x: 5, y: 5 }, end: { x: 55, y: 5 } }, "unattached: as stored");
  assertEqual(bounds({ ...arrow }, lookup), { x: 50, y: 100, w: 0, h: 200 }, "an arrow's bounds follow its shapes");
});

test("board: z keys always fit between two others", () => {
  let below = "";
  const keys = [];
  for (let i = 0; i < 50; i++) {
    below = keyBetween(below, null);
    keys.push(below);
  }
  assertEqual([...keys].sort(), keys, "appending keeps order");
  let above = keys[0];
  for (let i = 0; i < 50; i++) {
    const key = keyBetween("", above);
    assert(key < above && key > "", `${key} below ${above}`);
    above = key;
  }
  const a = "a";
  let b = "b";
  for (let i = 0; i < 40; i++) {
    const mid = keyBetween(a, b);
    assert(a < mid && mid < b, `${a} < ${mid} < ${b}`);
    assert(!mid.endsWith("0"), "never ends in 0");
    b = mid;
  }
  assert(keyBetween("b", "a") > "b", "out-of-order bounds: above the lower one");
});

test("board: resizing by handles, flipping past the other side, and scaling into a box", () => {
  const box = { x: 0, y: 0, w: 100, h: 50 };
  assertEqual(resizeBox(box, "se", { x: 200, y: 100 }), { x: 0, y: 0, w: 200, h: 100 }, "se");
  assertEqual(resizeBox(box, "w", { x: 150, y: 999 }), { x: 100, y: 0, w: 50, h: 50 }, "w dragged past e flips");
  assertEqual(resizeBox(box, "n", { x: 0, y: 10 }), { x: 0, y: 10, w: 100, h: 40 }, "n");
  assertEqual(resizeBox(box, "se", { x: 300, y: 60 }, { keepRatio: true }), { x: 0, y: 0, w: 300, h: 150 }, "ratio kept");
  const scaled = scaleInto(rect("r", 50, 0, 50, 50), box, { x: 0, y: 0, w: 200, h: 100 });
  assertEqual(scaled, { x: 100, y: 0, w: 100, h: 100 }, "a member of a group scales with it");
  const pen = scaleInto({ type: "pen", x: 0, y: 0, points: [0, 0, 100, 50] }, box, { x: 10, y: 10, w: 50, h: 25 });
  assertEqual(pen, { x: 10, y: 10, points: [0, 0, 50, 25] }, "pen points scale");
});

test("board: viewport conversions, zooming around a point, fitting content", () => {
  const view = { x: 100, y: 50, zoom: 2 };
  assertEqual(toBoard(view, { x: 20, y: 40 }), { x: 110, y: 70 }, "screen to board");
  assertEqual(toScreen(view, { x: 110, y: 70 }), { x: 20, y: 40 }, "board to screen");
  const zoomed = zoomAt(view, { x: 20, y: 40 }, 4);
  assertEqual(toBoard(zoomed, { x: 20, y: 40 }), { x: 110, y: 70 }, "the point under the cursor stays");
  assertEqual(zoomAt(view, { x: 0, y: 0 }, 1000).zoom, 8, "zoom is capped");
  const fit = fitView({ x: 0, y: 0, w: 1000, h: 500 }, 600, 400, { padding: 50 });
  assertEqual(fit.zoom, 0.5, "fits the width");
  assertEqual(toBoard(fit, { x: 300, y: 200 }), { x: 500, y: 250 }, "centred");
});

test("board: a turned shape is hit, bounded and connected where it is drawn", () => {
  const bar = rect("bar", 0, 40, 100, 20, { angle: 90 }); // a 100×20 bar stood upright about (50, 50)
  assertEqual(rotationOf(bar), 90, "rotation");
  assertEqual(rotationOf({ ...bar, angle: -90 }), 270, "normalised to [0, 360)");
  assertEqual(rotationOf({ ...bar, angle: 720 }), 0, "a whole turn is none");
  assertEqual(rotationOf({ type: "arrow", angle: 45 }), 0, "lines do not turn");
  assertEqual(rotationOf({ ...bar, angle: "90" }), 0, "only numbers");
  assert(hitTest(bar, { x: 50, y: 5 }, 0), "the upright bar's top");
  assert(!hitTest(bar, { x: 5, y: 50 }, 0), "not where it lay before turning");
  const box = bounds(bar);
  [[box.x, 40], [box.y, 0], [box.w, 20], [box.h, 100]].forEach(([a, b], i) => near(a, b, `bounds ${i}`));
  const end = borderPoint(bar, { x: 50, y: -100 });
  near(end.x, 50, "a connector from above meets the top, x");
  near(end.y, 0, "a connector from above meets the top, y");
  assertEqual(idsInBox([bar], { x: 35, y: -5, w: 30, h: 110 }), ["bar"], "a box around the upright bar takes it");
  near(rotationBetween(0, { x: 0, y: 0 }, { x: 10, y: 0 }, { x: 0, y: 10 }), 90, "a quarter turn of the pointer");
  near(rotationBetween(350, { x: 0, y: 0 }, { x: 10, y: 0 }, { x: 0, y: 10 }), 80, "wraps around");
  assertEqual(snapRotation(52), 45, "Shift snaps to 15°");
  assertEqual(snapRotation(359), 0, "and wraps");
});
