// The board's document: a Y.Doc whose map "elements" holds one Y.Map per element (docs/protocol.md,
// Boards). Every local change goes through a method here, in one transaction with origin LOCAL, so
// that the UndoManager (trackedOrigins = {LOCAL}) undoes only this person's own changes and never
// someone else's, and so that the sync layer sends exactly the local updates.
import * as Y from "../../vendor/yjs/yjs.mjs";
import { boundsOfElements, compareZ, connectorEnds, keyBetween, LINES, SHAPES } from "./geometry.js";

export { Y };
export const LOCAL = "parley-local";
export const REMOTE = "parley-remote";

const CAPTURE_MS = 600; // changes closer than this merge into one undo step (a drag, typing)

/** crypto.randomUUID exists only in secure contexts; plain-http hosts need the fallback. */
export function newId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function toBase64(bytes) {
  let binary = "";
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  return btoa(binary);
}

export function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** A plain snapshot of one element's Y.Map (with its id). */
function plainOf(id, map) {
  return { ...map.toJSON(), id };
}

export class BoardDoc {
  /**
   * user: the current user's id (createdBy). editable: false for viewers and during replay (every
   * change method then does nothing). onChange(ids: Set | null): after any change, local or remote;
   * null means "everything" (a new document).
   */
  constructor({ user = null, editable = true, doc = null, onChange = () => {} } = {}) {
    this.doc = doc || new Y.Doc();
    this.user = user;
    this.editable = editable;
    this.onChange = onChange;
    this.elements = this.doc.getMap("elements");
    this.plain = new Map(); // id -> plain object, kept current by the observer below
    this.sortedCache = null;
    this.#readAll();
    this.elements.observeDeep((events) => this.#observe(events));
    this.undoManager = new Y.UndoManager(this.elements, { trackedOrigins: new Set([LOCAL]), captureTimeout: CAPTURE_MS });
  }

  #readAll() {
    this.plain.clear();
    this.elements.forEach((value, id) => {
      if (value instanceof Y.Map) this.plain.set(id, plainOf(id, value));
    });
    this.sortedCache = null;
  }

  #observe(events) {
    const changed = new Set();
    for (const event of events) {
      if (event.target === this.elements) {
        for (const id of event.keysChanged) changed.add(id);
      } else if (event.path.length) {
        changed.add(String(event.path[0]));
      }
    }
    let order = false;
    for (const id of changed) {
      const value = this.elements.get(id);
      const before = this.plain.get(id);
      if (value instanceof Y.Map) {
        const now = plainOf(id, value);
        if (!before || before.z !== now.z) order = true;
        this.plain.set(id, now);
      } else if (before) {
        this.plain.delete(id);
        order = true;
      }
    }
    if (order) this.sortedCache = null;
    this.onChange(changed);
  }

  get(id) {
    return this.plain.get(id) || null;
  }

  has(id) {
    return this.plain.has(id);
  }

  /** Every element, bottom to top. */
  sorted() {
    // The order is cached (it changes only when elements come, go or change z); the elements
    // themselves are always the current ones.
    if (!this.sortedCache) this.sortedCache = [...this.plain.values()].sort(compareZ).map((element) => element.id);
    return this.sortedCache.map((id) => this.plain.get(id));
  }

  lookup = (id) => this.plain.get(id) || null;

  get size() {
    return this.plain.size;
  }

  /** The JSON the server renders too: {"elements": [...]} by (z, id). */
  toJSON() {
    return { elements: this.sorted().map((element) => ({ ...element })) };
  }

  transact(fn) {
    if (!this.editable) return false;
    this.doc.transact(fn, LOCAL);
    return true;
  }

  topZ() {
    const all = this.sorted();
    return all.length ? String(all[all.length - 1].z ?? "") : "";
  }

  /** Add an element; returns its id (null for a viewer). */
  add(props) {
    if (!this.editable) return null;
    const id = props.id || newId();
    const values = { createdBy: this.user, z: keyBetween(this.topZ(), null), ...props };
    delete values.id;
    this.transact(() => this.elements.set(id, new Y.Map(Object.entries(values))));
    return id;
  }

  /** Set properties of one element (only those that changed are written). */
  update(id, props) {
    return this.updateMany(new Map([[id, props]]));
  }

  /** Set properties of several elements in one transaction: changes is a Map id -> props. */
  updateMany(changes) {
    return this.transact(() => {
      for (const [id, props] of changes) {
        const map = this.elements.get(id);
        if (!(map instanceof Y.Map)) continue;
        for (const [key, value] of Object.entries(props)) {
          const current = map.get(key);
          if (JSON.stringify(current) !== JSON.stringify(value)) map.set(key, value);
        }
      }
    });
  }

  /** Delete elements; arrows attached to them stay where they are, detached. */
  remove(ids) {
    const gone = new Set(ids);
    return this.transact(() => {
      for (const element of this.plain.values()) {
        if (element.type !== "arrow" || gone.has(element.id)) continue;
        if (!gone.has(element.from) && !gone.has(element.to)) continue;
        const { start, end } = connectorEnds(element, this.lookup);
        const map = this.elements.get(element.id);
        map.set("x", start.x);
        map.set("y", start.y);
        map.set("points", [0, 0, end.x - start.x, end.y - start.y]);
        if (gone.has(element.from)) map.set("from", null);
        if (gone.has(element.to)) map.set("to", null);
      }
      for (const id of gone) this.elements.delete(id);
    });
  }

  /** Copies of elements, `offset` to the right and down, on top; arrows between copied shapes
   * connect the copies. Returns the new ids in order. */
  duplicate(ids, offset = 20) {
    if (!this.editable) return [];
    const sources = this.sorted().filter((element) => ids.includes(element.id));
    const copies = new Map(sources.map((element) => [element.id, newId()]));
    let z = this.topZ();
    this.transact(() => {
      for (const source of sources) {
        const values = { ...source, x: (source.x || 0) + offset, y: (source.y || 0) + offset, createdBy: this.user };
        delete values.id;
        z = keyBetween(z, null);
        values.z = z;
        if (source.type === "arrow") {
          values.from = source.from && copies.has(source.from) ? copies.get(source.from) : null;
          values.to = source.to && copies.has(source.to) ? copies.get(source.to) : null;
          if ((source.from && !values.from) || (source.to && !values.to)) {
            const { start, end } = connectorEnds(source, this.lookup);
            values.x = start.x + offset;
            values.y = start.y + offset;
            values.points = [0, 0, end.x - start.x, end.y - start.y];
          }
        }
        this.elements.set(copies.get(source.id), new Y.Map(Object.entries(values)));
      }
    });
    return sources.map((source) => copies.get(source.id));
  }

  /** Move the elements above (front) or below (back) all others, keeping their own order. */
  reorder(ids, where) {
    const chosen = this.sorted().filter((element) => ids.includes(element.id));
    if (!chosen.length) return false;
    const all = this.sorted();
    const changes = new Map();
    if (where === "front") {
      let z = this.topZ();
      for (const element of chosen) {
        z = keyBetween(z, null);
        changes.set(element.id, { z });
      }
    } else {
      const bottom = all.length ? String(all[0].z ?? "") : "";
      // keys between "" and the lowest key, in order
      let above = bottom || null;
      for (const element of [...chosen].reverse()) {
        const z = keyBetween("", above);
        changes.set(element.id, { z });
        above = z;
      }
    }
    return this.updateMany(changes);
  }

  /** Moving shapes moves the stored ends of arrows attached to them too (the drawing follows the
   * shapes anyway; this keeps the stored points, the JSON export, in line). */
  arrowEndsFor(ids) {
    const moved = new Set(ids);
    const changes = new Map();
    for (const element of this.plain.values()) {
      if (element.type !== "arrow" || moved.has(element.id)) continue;
      if (!moved.has(element.from) && !moved.has(element.to)) continue;
      const { start, end } = connectorEnds(element, this.lookup);
      changes.set(element.id, { x: start.x, y: start.y, points: [0, 0, end.x - start.x, end.y - start.y] });
    }
    return changes;
  }

  /** The box of everything (or of `ids`). */
  boundsOf(ids = null) {
    const chosen = ids ? ids.map((id) => this.plain.get(id)).filter(Boolean) : this.plain.values();
    return boundsOfElements(chosen, this.lookup);
  }

  undo() {
    if (this.editable) this.undoManager.undo();
  }

  redo() {
    if (this.editable) this.undoManager.redo();
  }

  /** The next change starts a new undo step (a new gesture). */
  stopCapturing() {
    this.undoManager.stopCapturing();
  }

  applyRemote(update) {
    Y.applyUpdate(this.doc, update, REMOTE);
  }

  stateVector() {
    return Y.encodeStateVector(this.doc);
  }

  destroy() {
    this.undoManager.destroy();
    this.doc.destroy();
  }
}

/** A read-only board from its JSON rendering (REST GET /api/v1/boards/{id}/): drawn at once while
 * the Yjs state is still on its way (a 10,000-element board draws in a fraction of the time its
 * Y.Doc takes to load). Same reading interface as BoardDoc. */
export class StaticBoard {
  constructor(elements) {
    this.plain = new Map(elements.filter((element) => element && typeof element.id === "string").map((element) => [element.id, element]));
    this.list = [...this.plain.values()].sort(compareZ);
  }

  lookup = (id) => this.plain.get(id) || null;

  sorted() {
    return this.list;
  }

  get(id) {
    return this.plain.get(id) || null;
  }

  has(id) {
    return this.plain.has(id);
  }

  get size() {
    return this.plain.size;
  }

  boundsOf(ids = null) {
    const chosen = ids ? ids.map((id) => this.plain.get(id)).filter(Boolean) : this.list;
    return boundsOfElements(chosen, this.lookup);
  }
}

export const isShape = (element) => SHAPES.has(element.type);
export const isLine = (element) => LINES.has(element.type);
