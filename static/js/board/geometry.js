// Pure geometry of the board: bounds, hit testing, connector attachment, resizing, z-order keys and
// the viewport. No DOM, no Yjs: elements here are plain objects with the document's properties
// (docs/protocol.md, Boards: type, x, y, w, h, points, from, to, z, ...), so everything is unit-tested
// (static/js/tests/board-geometry.test.js).

export const SHAPES = new Set(["rect", "ellipse", "diamond", "text", "sticky", "component"]);
export const LINES = new Set(["arrow", "pen"]);
export const MIN_ZOOM = 0.05;
export const MAX_ZOOM = 8;

const num = (value, fallback = 0) => (typeof value === "number" && Number.isFinite(value) ? value : fallback);

/** A rectangle with non-negative width and height from two corners. */
export function normRect(x1, y1, x2, y2) {
  return { x: Math.min(x1, x2), y: Math.min(y1, y2), w: Math.abs(x2 - x1), h: Math.abs(y2 - y1) };
}

export function center(box) {
  return { x: box.x + box.w / 2, y: box.y + box.h / 2 };
}

/** A shape's box (x, y, w, h), normalised (a negative width counts from the other side). */
export function shapeBox(element) {
  const x = num(element.x);
  const y = num(element.y);
  return normRect(x, y, x + num(element.w), y + num(element.h));
}

// --- rotation ---------------------------------------------------------------------------------
// A shape may be turned about the centre of its box: its `angle`, in degrees clockwise (the SVG
// rotate() of render.js; docs/protocol.md). Lines (arrows, pen strokes) are not turned: their
// points say it all.

/** A shape's rotation in degrees, in [0, 360) (0 for lines and for anything not a finite number). */
export function rotationOf(element) {
  if (!SHAPES.has(element.type)) return 0;
  const value = num(element.angle);
  const turned = ((value % 360) + 360) % 360;
  return turned > 1e-9 && 360 - turned > 1e-9 ? turned : 0;
}

/** The point p turned by `degrees` about `c`. */
export function rotatePoint(p, c, degrees) {
  if (!degrees) return p;
  const a = (degrees * Math.PI) / 180;
  const cos = Math.cos(a);
  const sin = Math.sin(a);
  const dx = p.x - c.x;
  const dy = p.y - c.y;
  return { x: c.x + dx * cos - dy * sin, y: c.y + dx * sin + dy * cos };
}

/** A rotation snapped to `step` degrees (Shift while turning), in [0, 360). */
export function snapRotation(degrees, step = 15) {
  const snapped = Math.round(degrees / step) * step;
  return ((snapped % 360) + 360) % 360;
}

/** The rotation that turning the pointer from `start` to `p` about `c` gives `original`. */
export function rotationBetween(original, c, start, p) {
  const before = Math.atan2(start.y - c.y, start.x - c.x);
  const after = Math.atan2(p.y - c.y, p.x - c.x);
  const turned = num(original) + ((after - before) * 180) / Math.PI;
  return ((turned % 360) + 360) % 360;
}

/** The point where the ray from a shape's centre towards `toward` leaves the shape (turned with it). */
export function borderPoint(element, toward) {
  const rotation = rotationOf(element);
  if (rotation) {
    const c = center(shapeBox(element));
    return rotatePoint(borderPoint({ ...element, angle: 0 }, rotatePoint(toward, c, -rotation)), c, rotation);
  }
  const box = shapeBox(element);
  const c = center(box);
  const dx = toward.x - c.x;
  const dy = toward.y - c.y;
  const rx = box.w / 2;
  const ry = box.h / 2;
  if ((dx === 0 && dy === 0) || rx === 0 || ry === 0) return c;
  let t; // the ray is c + t * (dx, dy); t where it crosses the outline
  if (element.type === "ellipse") t = 1 / Math.sqrt((dx / rx) ** 2 + (dy / ry) ** 2);
  else if (element.type === "diamond") t = 1 / (Math.abs(dx) / rx + Math.abs(dy) / ry);
  else t = 1 / Math.max(Math.abs(dx) / rx, Math.abs(dy) / ry);
  return { x: c.x + dx * t, y: c.y + dy * t };
}

/** Absolute [x0, y0, x1, y1, ...] of a pen stroke or an arrow as stored (relative to x/y). */
export function storedPoints(element) {
  const x = num(element.x);
  const y = num(element.y);
  const points = Array.isArray(element.points) ? element.points : [];
  const out = [];
  for (let i = 0; i + 1 < points.length; i += 2) out.push(x + num(points[i]), y + num(points[i + 1]));
  return out;
}

/**
 * An arrow's two ends, following the shapes it is attached to: an end attached to a shape (`from`
 * / `to` name an element that `lookup(id)` finds) sits on that shape's outline, on the line towards
 * the other end (the other shape's centre when both are attached). Unattached ends are as stored.
 */
export function connectorEnds(arrow, lookup) {
  const stored = storedPoints(arrow);
  let start = { x: stored[0] ?? num(arrow.x), y: stored[1] ?? num(arrow.y) };
  let end = { x: stored[stored.length - 2] ?? start.x, y: stored[stored.length - 1] ?? start.y };
  const from = arrow.from ? lookup(arrow.from) : null;
  const to = arrow.to ? lookup(arrow.to) : null;
  const fromShape = from && SHAPES.has(from.type) ? from : null;
  const toShape = to && SHAPES.has(to.type) ? to : null;
  const startAim = toShape ? center(shapeBox(toShape)) : end;
  const endAim = fromShape ? center(shapeBox(fromShape)) : start;
  if (fromShape) start = borderPoint(fromShape, startAim);
  if (toShape) end = borderPoint(toShape, endAim);
  return { start, end };
}

/** The absolute points to draw an element with (pen: its stroke; arrow: its resolved ends). */
export function linePoints(element, lookup) {
  if (element.type === "arrow") {
    const { start, end } = connectorEnds(element, lookup);
    return [start.x, start.y, end.x, end.y];
  }
  return storedPoints(element);
}

/** The bounding box of any element (arrows with their attached ends, turned shapes whole). */
export function bounds(element, lookup = () => null) {
  if (!LINES.has(element.type)) {
    const box = shapeBox(element);
    const rotation = rotationOf(element);
    if (!rotation) return box;
    const c = center(box);
    const corners = [
      { x: box.x, y: box.y },
      { x: box.x + box.w, y: box.y },
      { x: box.x + box.w, y: box.y + box.h },
      { x: box.x, y: box.y + box.h },
    ].map((corner) => rotatePoint(corner, c, rotation));
    const xs = corners.map((corner) => corner.x);
    const ys = corners.map((corner) => corner.y);
    return normRect(Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys));
  }
  const points = linePoints(element, lookup);
  if (points.length < 2) return { x: num(element.x), y: num(element.y), w: 0, h: 0 };
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (let i = 0; i + 1 < points.length; i += 2) {
    minX = Math.min(minX, points[i]);
    maxX = Math.max(maxX, points[i]);
    minY = Math.min(minY, points[i + 1]);
    maxY = Math.max(maxY, points[i + 1]);
  }
  return { x: minX, y: minY, w: maxX - minX, h: maxY - minY };
}

/** The box around several boxes (null for none). */
export function union(boxes) {
  let out = null;
  for (const box of boxes) {
    if (!box) continue;
    if (!out) {
      out = { ...box };
      continue;
    }
    const x2 = Math.max(out.x + out.w, box.x + box.w);
    const y2 = Math.max(out.y + out.h, box.y + box.h);
    out.x = Math.min(out.x, box.x);
    out.y = Math.min(out.y, box.y);
    out.w = x2 - out.x;
    out.h = y2 - out.y;
  }
  return out;
}

/** The box around every element of an iterable (null for none). */
export function boundsOfElements(elements, lookup = () => null) {
  let out = null;
  for (const element of elements) {
    const box = bounds(element, lookup);
    if (!out) out = { ...box };
    else {
      const x2 = Math.max(out.x + out.w, box.x + box.w);
      const y2 = Math.max(out.y + out.h, box.y + box.h);
      out.x = Math.min(out.x, box.x);
      out.y = Math.min(out.y, box.y);
      out.w = x2 - out.x;
      out.h = y2 - out.y;
    }
  }
  return out;
}

export function expand(box, by) {
  return { x: box.x - by, y: box.y - by, w: box.w + 2 * by, h: box.h + 2 * by };
}

export function boxesIntersect(a, b) {
  return a.x <= b.x + b.w && b.x <= a.x + a.w && a.y <= b.y + b.h && b.y <= a.y + a.h;
}

export function boxContains(outer, inner) {
  return (
    inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.w <= outer.x + outer.w && inner.y + inner.h <= outer.y + outer.h
  );
}

/** Distance from p to the segment a-b. */
export function segmentDistance(p, a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const length2 = dx * dx + dy * dy;
  const t = length2 === 0 ? 0 : Math.max(0, Math.min(1, ((p.x - a.x) * dx + (p.y - a.y) * dy) / length2));
  return Math.hypot(p.x - (a.x + t * dx), p.y - (a.y + t * dy));
}

/** Whether the point p (board coordinates) is on the element, within `tolerance` of lines. */
export function hitTest(element, p, tolerance = 4, lookup = () => null) {
  if (LINES.has(element.type)) {
    const points = linePoints(element, lookup);
    if (points.length === 2) return Math.hypot(p.x - points[0], p.y - points[1]) <= tolerance;
    for (let i = 0; i + 3 < points.length; i += 2) {
      const a = { x: points[i], y: points[i + 1] };
      const b = { x: points[i + 2], y: points[i + 3] };
      if (segmentDistance(p, a, b) <= tolerance + num(element.strokeWidth, 2) / 2) return true;
    }
    return false;
  }
  const rotation = rotationOf(element);
  if (rotation) p = rotatePoint(p, center(shapeBox(element)), -rotation); // into the shape's frame
  const box = expand(shapeBox(element), tolerance);
  const c = center(box);
  const rx = box.w / 2;
  const ry = box.h / 2;
  if (rx <= 0 || ry <= 0) return false;
  const nx = (p.x - c.x) / rx;
  const ny = (p.y - c.y) / ry;
  if (element.type === "ellipse") return nx * nx + ny * ny <= 1;
  if (element.type === "diamond") return Math.abs(nx) + Math.abs(ny) <= 1;
  return Math.abs(nx) <= 1 && Math.abs(ny) <= 1;
}

/** Order elements as the document says: by (z, id). */
export function compareZ(a, b) {
  const za = String(a.z ?? "");
  const zb = String(b.z ?? "");
  if (za !== zb) return za < zb ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The topmost element under p (elements sorted bottom to top), or null. */
export function topmostAt(sorted, p, tolerance = 4, lookup = () => null, skip = () => false) {
  for (let i = sorted.length - 1; i >= 0; i--) {
    if (!skip(sorted[i]) && hitTest(sorted[i], p, tolerance, lookup)) return sorted[i];
  }
  return null;
}

/** Ids of the elements a selection box takes: those entirely inside it. */
export function idsInBox(elements, box, lookup = () => null) {
  return elements.filter((element) => boxContains(box, bounds(element, lookup))).map((element) => element.id);
}

// --- z-order keys -----------------------------------------------------------------------------
// Fractional keys in base 36: a key strictly between two others always exists, so moving an
// element to the front or back rewrites only that element's `z`. Keys never end in "0".

const DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz";

function midpoint(a, b) {
  if (b !== null) {
    let n = 0;
    while ((a[n] || "0") === b[n]) n++;
    if (n > 0) return b.slice(0, n) + midpoint(a.slice(n), b.slice(n));
  }
  const digitA = a ? DIGITS.indexOf(a[0]) : 0;
  const digitB = b !== null ? DIGITS.indexOf(b[0]) : DIGITS.length;
  if (digitB - digitA > 1) return DIGITS[Math.round((digitA + digitB) / 2)];
  if (b !== null && b.length > 1) return b.slice(0, 1);
  return DIGITS[digitA] + midpoint(a.slice(1), null);
}

/** A key sorting strictly between `below` and `above` (null: no bound on that side). */
export function keyBetween(below, above) {
  const a = below || "";
  const b = above || null;
  if (b !== null && a >= b) return keyBetween(a, null); // concurrent edits left them out of order
  return midpoint(a, b);
}

// --- resizing ----------------------------------------------------------------------------------

export const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];

/** Where a handle sits on a box. */
export function handlePoint(box, handle) {
  const x = handle.includes("w") ? box.x : handle.includes("e") ? box.x + box.w : box.x + box.w / 2;
  const y = handle.includes("n") ? box.y : handle.includes("s") ? box.y + box.h : box.y + box.h / 2;
  return { x, y };
}

/** The box after dragging `handle` of `box` to the point p (flipping past the opposite side). */
export function resizeBox(box, handle, p, { keepRatio = false } = {}) {
  let x1 = box.x;
  let y1 = box.y;
  let x2 = box.x + box.w;
  let y2 = box.y + box.h;
  if (handle.includes("w")) x1 = p.x;
  if (handle.includes("e")) x2 = p.x;
  if (handle.includes("n")) y1 = p.y;
  if (handle.includes("s")) y2 = p.y;
  if (keepRatio && box.w > 0 && box.h > 0 && handle.length === 2) {
    const scale = Math.max(Math.abs(x2 - x1) / box.w, Math.abs(y2 - y1) / box.h);
    const w = box.w * scale;
    const h = box.h * scale;
    if (handle.includes("w")) x1 = x2 - w * Math.sign(x2 - x1 || 1);
    else x2 = x1 + w * Math.sign(x2 - x1 || 1);
    if (handle.includes("n")) y1 = y2 - h * Math.sign(y2 - y1 || 1);
    else y2 = y1 + h * Math.sign(y2 - y1 || 1);
  }
  return normRect(x1, y1, x2, y2);
}

/**
 * The properties that put an element scaled from box `from` into box `to` (several elements
 * resized together each map through the selection's box).
 */
export function scaleInto(element, from, to) {
  const sx = from.w ? to.w / from.w : 1;
  const sy = from.h ? to.h / from.h : 1;
  const mapX = (x) => to.x + (x - from.x) * sx;
  const mapY = (y) => to.y + (y - from.y) * sy;
  if (LINES.has(element.type)) {
    const points = Array.isArray(element.points) ? element.points : [];
    return {
      x: mapX(num(element.x)),
      y: mapY(num(element.y)),
      points: points.map((value, i) => (i % 2 === 0 ? value * sx : value * sy)),
    };
  }
  const box = shapeBox(element);
  return { x: mapX(box.x), y: mapY(box.y), w: box.w * sx, h: box.h * sy };
}

// --- the viewport -----------------------------------------------------------------------------
// {x, y, zoom}: the board point at the top-left of the screen, and screen pixels per board unit.

export function toBoard(view, screen) {
  return { x: view.x + screen.x / view.zoom, y: view.y + screen.y / view.zoom };
}

export function toScreen(view, p) {
  return { x: (p.x - view.x) * view.zoom, y: (p.y - view.y) * view.zoom };
}

export function clampZoom(zoom) {
  return Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
}

/** Zoom to `zoom` keeping the board point under the screen point `screen` where it is. */
export function zoomAt(view, screen, zoom) {
  const next = clampZoom(zoom);
  const p = toBoard(view, screen);
  return { x: p.x - screen.x / next, y: p.y - screen.y / next, zoom: next };
}

/** The view that shows `box` whole and centred on a screen of size (width, height). */
export function fitView(box, width, height, { padding = 40, maxZoom = 2 } = {}) {
  if (!box || width <= 0 || height <= 0) return { x: 0, y: 0, zoom: 1 };
  const zoom = clampZoom(
    Math.min(maxZoom, (width - 2 * padding) / Math.max(box.w, 1), (height - 2 * padding) / Math.max(box.h, 1)),
  );
  const c = center(box);
  return { x: c.x - width / 2 / zoom, y: c.y - height / 2 / zoom, zoom };
}
