// Drawing the board as SVG: one <g data-id> per element under the viewport group, kept in (z, id)
// order, re-drawn only when its element (or a shape an arrow is attached to) changed. The same
// `elementNode` draws exported SVG (export.js), so what you see is what you export. Only SVG
// presentation attributes are used (no style attributes: the page's Content-Security-Policy).
import { boxesIntersect, bounds, center, handlePoint, HANDLES, linePoints, rotationOf, shapeBox } from "./geometry.js";

export const SVG_NS = "http://www.w3.org/2000/svg";
export const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
export const FAR_ZOOM = 0.3;
export const DEFAULTS = { stroke: "#1f2937", fill: "transparent", sticky: "#fde68a", fontSize: 16, strokeWidth: 2 };

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(key, String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const finite = (value, fallback = 0) => (typeof value === "number" && Number.isFinite(value) ? value : fallback);
const paint = (value, fallback) => {
  const colour = typeof value === "string" && value ? value : fallback;
  return colour === "transparent" ? "none" : colour;
};

/** Lines of text wrapped to `width` (roughly: an average glyph is 0.55 em). */
export function wrapText(text, width, fontSize) {
  const perLine = width > 0 ? Math.max(1, Math.floor(width / (fontSize * 0.55))) : Infinity;
  const out = [];
  for (const paragraph of String(text ?? "").split("\n")) {
    if (paragraph.length <= perLine) {
      out.push(paragraph);
      continue;
    }
    let line = "";
    for (const word of paragraph.split(/(\s+)/)) {
      if ((line + word).length > perLine && line.trim()) {
        out.push(line.trimEnd());
        line = word.trimStart();
      } else line += word;
      while (line.length > perLine) {
        out.push(line.slice(0, perLine));
        line = line.slice(perLine);
      }
    }
    out.push(line);
  }
  return out;
}

// Elements are drawn as markup strings (every value escaped) and parsed by the browser in one go:
// building 10,000 elements node by node costs several times more (docs/performance.md).
const escapeMap = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const NEEDS_ESCAPE = /[&<>"']/;
export const escapeXml = (value) => {
  const text = String(value);
  return NEEDS_ESCAPE.test(text) ? text.replace(/[&<>"']/g, (c) => escapeMap[c]) : text;
};

function tag(name, attrs, inner = null) {
  let out = `<${name}`;
  for (const key in attrs) {
    const value = attrs[key];
    if (value === null || value === undefined || value === false) continue;
    out += ` ${key}="${typeof value === "number" ? value : escapeXml(value)}"`;
  }
  return inner === null ? `${out}/>` : `${out}>${inner}</${name}>`;
}

function textBlock(element, box, { align = "middle", valign = "middle", colour }) {
  const fontSize = finite(element.fontSize, DEFAULTS.fontSize);
  const lines = wrapText(element.text, box.w - 12, fontSize);
  if (!lines.length || (lines.length === 1 && !lines[0])) return "";
  const lineHeight = fontSize * 1.25;
  const total = lines.length * lineHeight;
  const x = align === "start" ? box.x + 6 : box.x + box.w / 2;
  const top = valign === "top" ? box.y + 6 : box.y + (box.h - total) / 2;
  // One line (most labels) needs no <tspan>; the font family comes from the <svg> (fewer bytes
  // and nodes on big boards).
  const inner =
    lines.length === 1
      ? escapeXml(lines[0])
      : lines.map((line, i) => tag("tspan", { x, y: top + i * lineHeight }, escapeXml(line || " "))).join("");
  return tag(
    "text",
    { x, y: top, "font-size": fontSize, fill: colour, "text-anchor": align, "dominant-baseline": "hanging", class: "board-text" },
    inner,
  );
}

/** The SVG transform of a turned shape (about the centre of its box), or null. */
export function rotationTransform(element) {
  const rotation = rotationOf(element);
  if (!rotation) return null;
  const c = center(shapeBox(element));
  return `rotate(${Math.round(rotation * 100) / 100} ${c.x} ${c.y})`;
}

/** The markup of one element: a <g data-id> (`lookup(id)` finds the shapes arrows attach to). */
export function elementMarkup(element, lookup) {
  return tag(
    "g",
    { "data-id": element.id, "data-z": String(element.z ?? ""), transform: rotationTransform(element) },
    innerMarkup(element, lookup),
  );
}

/** The SVG node of one element. */
export function elementNode(element, lookup) {
  const group = svg("g", { "data-id": element.id });
  fillElementNode(group, element, lookup);
  return group;
}

export function fillElementNode(group, element, lookup) {
  const transform = rotationTransform(element);
  if (transform) group.setAttribute("transform", transform);
  else group.removeAttribute("transform");
  group.innerHTML = innerMarkup(element, lookup);
}

function innerMarkup(element, lookup) {
  const stroke = paint(element.stroke, DEFAULTS.stroke);
  const strokeWidth = finite(element.strokeWidth, DEFAULTS.strokeWidth);
  const box = shapeBox(element);
  const common = { stroke, "stroke-width": strokeWidth }; // stroke-linejoin: round comes from the <svg>
  let out = "";
  switch (element.type) {
    case "rect":
    case "component":
      out += tag("rect", { ...common, x: box.x, y: box.y, width: box.w, height: box.h, rx: 4, fill: paint(element.fill, DEFAULTS.fill) });
      if (element.type === "component" && !element.text && element.kind) out += textBlock({ text: element.kind }, box, { colour: stroke });
      break;
    case "ellipse":
      out += tag("ellipse", { ...common, cx: box.x + box.w / 2, cy: box.y + box.h / 2, rx: box.w / 2, ry: box.h / 2, fill: paint(element.fill, DEFAULTS.fill) });
      break;
    case "diamond": {
      const cx = box.x + box.w / 2;
      const cy = box.y + box.h / 2;
      const points = `${cx},${box.y} ${box.x + box.w},${cy} ${cx},${box.y + box.h} ${box.x},${cy}`;
      out += tag("polygon", { ...common, points, fill: paint(element.fill, DEFAULTS.fill) });
      break;
    }
    case "sticky":
      out += tag("rect", { x: box.x, y: box.y, width: box.w, height: box.h, fill: paint(element.fill, DEFAULTS.sticky), stroke: "#d4b94a", "stroke-width": 1 });
      break;
    case "text":
      // An invisible box makes the whole text area clickable.
      out += tag("rect", { x: box.x, y: box.y, width: box.w, height: box.h, fill: "transparent", class: "board-hitbox" });
      break;
    case "pen":
      out += tag("polyline", { ...common, points: pairs(linePoints(element, lookup)), fill: "none", "stroke-linecap": "round" });
      break;
    case "arrow": {
      const points = linePoints(element, lookup);
      if (points.length >= 4) {
        const [x1, y1, x2, y2] = points;
        out += tag("line", { ...common, x1, y1, x2, y2, "stroke-linecap": "round" });
        out += tag("polygon", { points: arrowHead(x1, y1, x2, y2, 8 + strokeWidth * 2), fill: stroke });
      }
      break;
    }
    default:
      out += tag("rect", { x: box.x, y: box.y, width: box.w, height: box.h, fill: "none", stroke: "#9ca3af", "stroke-dasharray": "4 4" });
  }
  if (element.text && element.type !== "pen" && element.type !== "arrow") {
    const textColour = element.type === "sticky" || element.type === "text" ? paint(element.stroke, DEFAULTS.stroke) : stroke;
    const options =
      element.type === "text"
        ? { align: "start", valign: "top", colour: textColour }
        : element.type === "sticky"
          ? { valign: "top", align: "start", colour: textColour }
          : { colour: textColour };
    out += textBlock(element, box, options);
  }
  return out;
}

function pairs(points) {
  const out = [];
  for (let i = 0; i + 1 < points.length; i += 2) out.push(`${points[i]},${points[i + 1]}`);
  return out.join(" ");
}

function arrowHead(x1, y1, x2, y2, size) {
  const angle = Math.atan2(y2 - y1, x2 - x1);
  const a = angle + Math.PI - 0.45;
  const b = angle + Math.PI + 0.45;
  return `${x2},${y2} ${x2 + size * Math.cos(a)},${y2 + size * Math.sin(a)} ${x2 + size * Math.cos(b)},${y2 + size * Math.sin(b)}`;
}

/**
 * The live drawing: elements, others' selections and cursors, our selection, comment badges.
 * `source` is a BoardDoc (or, while replaying, a read-only one).
 */
export class BoardView {
  constructor(root) {
    this.root = root; // the <svg>
    this.viewport = svg("g", { class: "board-viewport" });
    this.layers = {
      elements: svg("g", { class: "board-elements" }),
      badges: svg("g", { class: "board-badges" }),
      remote: svg("g", { class: "board-remote" }),
      selection: svg("g", { class: "board-selection" }),
      draft: svg("g", { class: "board-draft" }),
      cursors: svg("g", { class: "board-cursors" }),
    };
    for (const layer of Object.values(this.layers)) this.viewport.append(layer);
    root.append(this.viewport);
    this.nodes = new Map(); // id -> <g>
    this.view = { x: 0, y: 0, zoom: 1 };
    this.source = null;
    this.hiddenText = null;
  }

  setView(view) {
    this.view = view;
    // Far out, text is a few pixels high: not laying it out keeps big boards fast.
    this.root.classList.toggle("is-far", view.zoom < FAR_ZOOM);
    this.viewport.setAttribute("transform", `matrix(${view.zoom} 0 0 ${view.zoom} ${-view.x * view.zoom} ${-view.y * view.zoom})`);
    this.#fillVisible();
  }

  // Only elements in or near the view are drawn (culling): a big board opens drawing what is on
  // screen, and what comes into view as one pans or zooms out is drawn then. Drawn nodes stay.

  /** The board area drawn: the view plus half a screen on every side. */
  /** The stage changed size (a ResizeObserver calls this). */
  resized() {
    this.size = null;
    this.#fillVisible();
  }

  #drawnBox() {
    if (!this.size) {
      const { width, height } = this.root.getBoundingClientRect();
      this.size = { width, height };
    }
    const { width, height } = this.size;
    const w = (width || 1280) / this.view.zoom;
    const h = (height || 800) / this.view.zoom;
    return { x: this.view.x - w / 2, y: this.view.y - h / 2, w: w * 2, h: h * 2 };
  }

  #inView(element, box) {
    return boxesIntersect(bounds(element, this.source.lookup), box);
  }

  /** Draw the elements of the drawn area that are not drawn yet, in one parse. */
  #fillVisible() {
    const source = this.source;
    if (!source || this.nodes.size === source.size) return;
    const box = this.#drawnBox();
    const missing = source.sorted().filter((element) => !this.nodes.has(element.id) && this.#inView(element, box));
    if (!missing.length) return;
    const holder = svg("g");
    holder.innerHTML = missing.map((element) => elementMarkup(element, source.lookup)).join("");
    for (const node of [...holder.children]) {
      this.nodes.set(node.dataset.id, node);
      this.layers.elements.append(node);
    }
    this.#reorder();
  }

  /** Draw anew from `source` (a new document, or replay): what is in or near the view. */
  renderAll(source) {
    this.source = source;
    this.nodes.clear();
    const layer = this.layers.elements;
    const box = this.#drawnBox();
    layer.innerHTML = source
      .sorted()
      .filter((element) => this.#inView(element, box))
      .map((element) => elementMarkup(element, source.lookup))
      .join("");
    for (const node of layer.children) this.nodes.set(node.dataset.id, node);
    this.setEditing(this.hiddenText);
  }

  /** Switch to `source` keeping the nodes of elements that are the same in both (the JSON preview
   * becoming the live document costs nothing when nothing changed in between). */
  adopt(source) {
    const before = this.source;
    if (!before) {
      this.renderAll(source);
      return;
    }
    this.source = source;
    const changed = new Set();
    for (const element of source.sorted()) {
      const old = before.get(element.id);
      if (!old || !sameElement(old, element)) changed.add(element.id);
    }
    for (const id of this.nodes.keys()) if (!source.has(id)) changed.add(id);
    this.renderChanged(changed, { reorder: true });
  }

  /** Re-draw the elements `ids` (and arrows attached to them), and restore (z, id) order if needed. */
  renderChanged(ids, { reorder = false } = {}) {
    const source = this.source;
    if (!source) return;
    const redraw = new Set(ids);
    if (ids.size) {
      for (const element of source.plain.values()) {
        if (element.type === "arrow" && (redraw.has(element.from) || redraw.has(element.to))) redraw.add(element.id);
      }
    }
    let orderChanged = false;
    let box = null;
    for (const id of redraw) {
      const element = source.get(id);
      const node = this.nodes.get(id);
      if (element && !node && !this.#inView(element, (box ||= this.#drawnBox()))) continue; // drawn when in view
      if (!element) {
        if (node) {
          node.remove();
          this.nodes.delete(id);
        }
        continue;
      }
      if (node) {
        if (node.dataset.z !== String(element.z ?? "")) orderChanged = true;
        fillElementNode(node, element, source.lookup);
      } else {
        const fresh = elementNode(element, source.lookup);
        this.nodes.set(id, fresh);
        this.layers.elements.append(fresh);
        orderChanged = true;
      }
      this.nodes.get(id).dataset.z = String(element.z ?? "");
      this.nodes.get(id).classList.toggle("is-editing", this.hiddenText === id);
    }
    if (orderChanged || reorder) this.#reorder();
  }

  #reorder() {
    const layer = this.layers.elements;
    let previous = null;
    for (const element of this.source.sorted()) {
      const node = this.nodes.get(element.id);
      if (!node) continue;
      node.dataset.z = String(element.z ?? "");
      const expected = previous ? previous.nextSibling : layer.firstChild;
      if (expected !== node) layer.insertBefore(node, expected);
      previous = node;
    }
  }

  /** Hide an element's text while it is edited in place. */
  setEditing(id) {
    if (this.hiddenText && this.nodes.get(this.hiddenText)) this.nodes.get(this.hiddenText).classList.remove("is-editing");
    this.hiddenText = id;
    if (id && this.nodes.get(id)) this.nodes.get(id).classList.add("is-editing");
  }

  /** Our selection: a dashed box per element, and the resize handles of the whole selection. */
  renderSelection(ids, { handles = true } = {}) {
    const layer = this.layers.selection;
    layer.replaceChildren();
    if (!this.source || !ids.length) return;
    const zoom = this.view.zoom;
    const boxes = ids.map((id) => this.source.get(id)).filter(Boolean).map((element) => bounds(element, this.source.lookup));
    if (!boxes.length) return;
    for (const box of boxes) {
      layer.append(svg("rect", { x: box.x - 3 / zoom, y: box.y - 3 / zoom, width: box.w + 6 / zoom, height: box.h + 6 / zoom, class: "sel-outline", "stroke-width": 1 / zoom }));
    }
    if (!handles) return;
    const all = this.source.boundsOf(ids);
    if (boxes.length > 1) layer.append(svg("rect", { x: all.x, y: all.y, width: all.w, height: all.h, class: "sel-group", "stroke-width": 1 / zoom }));
    const size = 8 / zoom;
    for (const handle of HANDLES) {
      const p = handlePoint(all, handle);
      layer.append(svg("rect", { x: p.x - size / 2, y: p.y - size / 2, width: size, height: size, class: "sel-handle", "data-handle": handle, "stroke-width": 1 / zoom }));
    }
    // One shape selected: a round handle above it turns it (app.js, the "rotate" gesture).
    const only = ids.length === 1 ? this.source.get(ids[0]) : null;
    if (only && rotationHandle(only)) {
      const p = rotationHandlePoint(all, zoom);
      layer.append(svg("line", { x1: p.x, y1: all.y, x2: p.x, y2: p.y, class: "sel-rotate-stem", "stroke-width": 1 / zoom }));
      layer.append(svg("circle", { cx: p.x, cy: p.y, r: 5 / zoom, class: "sel-handle sel-rotate", "data-handle": "rotate", "stroke-width": 1 / zoom }));
    }
  }

  /** A box being dragged out (selection box, or a shape being drawn: shown by the doc itself). */
  renderDraft(box) {
    this.layers.draft.replaceChildren();
    if (box) this.layers.draft.append(svg("rect", { x: box.x, y: box.y, width: box.w, height: box.h, class: "sel-box", "stroke-width": 1 / this.view.zoom }));
  }

  /** Others: their selections outlined and their cursors with names, in their colours. */
  renderPeers(peers) {
    const zoom = this.view.zoom;
    const remote = [];
    const cursors = [];
    for (const [key, { user, state }] of peers) {
      const colour = safeColour(state.colour);
      const name = String(user?.display_name || state.name || user?.username || "someone").slice(0, 40);
      if (this.source && Array.isArray(state.selection)) {
        for (const id of state.selection.slice(0, 200)) {
          const element = this.source.get(id);
          if (!element) continue;
          const box = bounds(element, this.source.lookup);
          remote.push(
            svg("rect", { x: box.x - 5 / zoom, y: box.y - 5 / zoom, width: box.w + 10 / zoom, height: box.h + 10 / zoom, fill: "none", stroke: colour, "stroke-width": 2 / zoom, "data-peer": key, class: "peer-selection" }),
          );
        }
      }
      const cursor = state.cursor;
      if (cursor && Number.isFinite(cursor.x) && Number.isFinite(cursor.y)) {
        const label = svg("text", { x: 14, y: 26, "font-family": FONT, "font-size": 12, fill: "#fff" });
        label.textContent = name;
        const width = 12 + name.length * 7;
        cursors.push(
          svg(
            "g",
            { transform: `translate(${cursor.x} ${cursor.y}) scale(${1 / zoom})`, class: "peer-cursor", "data-peer": key, "data-name": name },
            svg("path", { d: "M0 0 L0 16 L4.5 12 L8 19 L10.5 18 L7 11 L13 11 Z", fill: colour, stroke: "#fff", "stroke-width": 1 }),
            svg("rect", { x: 10, y: 14, width, height: 18, rx: 4, fill: colour }),
            label,
          ),
        );
      }
    }
    this.layers.remote.replaceChildren(...remote);
    this.layers.cursors.replaceChildren(...cursors);
  }

  /** Comment badges: a numbered bubble at the top-right of each commented element (or point). */
  renderBadges(counts, pins) {
    const zoom = this.view.zoom;
    const badges = [];
    const bubble = (x, y, count, attrs) => {
      const text = svg("text", { x: 0, y: 4, "font-family": FONT, "font-size": 11, "text-anchor": "middle", fill: "#fff" });
      text.textContent = String(count);
      return svg("g", { transform: `translate(${x} ${y}) scale(${1 / zoom})`, class: "comment-badge", ...attrs }, svg("circle", { r: 10, fill: "#7c3aed" }), text);
    };
    for (const [id, count] of counts) {
      const element = this.source?.get(id);
      if (!element) continue;
      const box = bounds(element, this.source.lookup);
      badges.push(bubble(box.x + box.w, box.y, count, { "data-comment-element": id }));
    }
    for (const pin of pins) badges.push(bubble(pin.x, pin.y, pin.count, { "data-comment-thread": pin.id }));
    this.layers.badges.replaceChildren(...badges);
  }
}

/** Whether an element can be turned (shapes; not arrows or pen strokes). */
export function rotationHandle(element) {
  return ["rect", "ellipse", "diamond", "text", "sticky", "component"].includes(element.type);
}

/** Where the rotation handle sits: 24 screen pixels above the middle of the selection's box. */
export function rotationHandlePoint(box, zoom) {
  return { x: box.x + box.w / 2, y: box.y - 24 / zoom };
}

/** Whether two renderings of an element have the same properties (whatever their key order). */
export function sameElement(a, b) {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) return false;
  return true;
}

/** A colour from someone else's awareness state, or grey if it is not a plain colour. */
export function safeColour(value) {
  return typeof value === "string" && /^(#[0-9a-fA-F]{3,8}|hsl\(\d{1,3}(\.\d+)? \d{1,3}% \d{1,3}%\))$/.test(value) ? value : "#6b7280";
}
