// One board on screen: the canvas and its tools, bound to the document (doc.js) and the socket
// (sync.js). Used by the board page (page.js) and by the split view next to a room's chat
// (split.js); both give it the page's one socket (`send`) and forward the socket's frames.
//
//   geometry.js  pure geometry (hit testing, connectors, resizing, z keys, the viewport)
//   doc.js       the Y.Doc and every change to it (origin LOCAL: undo is one's own)
//   sync.js      board.join / update / ack / sync / awareness; outbox.js: unacked updates
//   render.js    SVG drawing; export.js: SVG/PNG/JSON; comments.js; replay.js
import { avatarHue, el } from "../dom.js";
import { csrfToken, getJson, sendJson } from "../api.js";
import { BoardDoc, StaticBoard } from "./doc.js";
import { BoardSync } from "./sync.js";
import { BoardView, DEFAULTS, FONT, wrapText } from "./render.js";
import {
  bounds,
  center,
  clampZoom,
  connectorEnds,
  fitView,
  idsInBox,
  normRect,
  resizeBox,
  rotationBetween,
  rotationOf,
  scaleInto,
  shapeBox,
  SHAPES,
  snapRotation,
  toBoard,
  topmostAt,
  zoomAt,
} from "./geometry.js";
import { download, exportPngBlob, exportSvgText, safeFilename } from "./export.js";
import { Comments } from "./comments.js";
import { Replay } from "./replay.js";
import { attachSimulator } from "../simulator/board.js";

export const TOOLS = [
  ["select", "Select", "V", "M3 2l10 6-4.5 1.2L11 14l-2 1-2.4-4.6L3 13z"],
  ["rect", "Rectangle", "R", "M2.5 3.5h11v9h-11z"],
  ["ellipse", "Ellipse", "O", "M8 3c3.3 0 5.5 2.2 5.5 5S11.3 13 8 13 2.5 10.8 2.5 8 4.7 3 8 3z"],
  ["diamond", "Diamond", "D", "M8 2l6 6-6 6-6-6z"],
  ["text", "Text", "T", "M3 3.5h10M8 3.5V13M6 13h4"],
  ["sticky", "Sticky note", "S", "M2.5 2.5h11v7l-4 4h-7zM13.5 9.5h-4v4"],
  ["arrow", "Arrow", "A", "M2.5 13.5l10-10M7 3.5h5.5V9"],
  ["pen", "Pen", "P", "M2.5 13.5c2-5 4-1 6-5s3-5 5-5"],
];
const KEY_TOOLS = Object.fromEntries(TOOLS.map(([tool, , key]) => [key.toLowerCase(), tool]));
const BIG_BOARD = 2000;
const STROKES = ["#1f2937", "#dc2626", "#2563eb", "#16a34a", "#d97706", "#7c3aed"];
const FILLS = ["transparent", "#fee2e2", "#dbeafe", "#dcfce7", "#fef3c7", "#fde68a"];
const DEFAULT_SIZE = { rect: [140, 90], ellipse: [140, 90], diamond: [140, 110], sticky: [180, 160], text: [220, 32] };
const CONNECTION_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  "signed-out": "Signed out",
};
// Which transport carries the board (live.js): said only when it is not the usual WebSocket.
const TRANSPORT_TEXT = { sse: " (SSE)", poll: " (long-polling)" };
// A deleted board's page takes its reader back to the room after this long (they are told first).
const GONE_REDIRECT_MS = 5000;

function iconButton(attrs, label, path, shortcut) {
  const button = el("button", { type: "button", class: "btn btn-ghost board-btn", title: shortcut ? `${label} (${shortcut})` : label, "aria-label": label, ...attrs });
  const ns = "http://www.w3.org/2000/svg";
  const icon = document.createElementNS(ns, "svg");
  icon.setAttribute("viewBox", "0 0 16 16");
  icon.setAttribute("aria-hidden", "true");
  icon.setAttribute("class", "icon");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", path);
  icon.append(p);
  button.append(icon);
  return button;
}

/** The board's DOM (header, toolbar, stage, side panels), built here so both pages share it. */
export function buildBoardDom(container, { title, canEdit, standalone, canManageBoard = false }) {
  const tools = el("div", { class: "board-group", role: "group", "aria-label": "Tools" });
  for (const [tool, label, key, path] of TOOLS) {
    tools.append(iconButton({ "data-tool": tool, "aria-pressed": String(tool === "select"), disabled: !canEdit && tool !== "select" }, label, path, key));
  }
  const swatches = (kind, colours, label) => {
    const group = el("div", { class: "board-group board-swatches", role: "group", "aria-label": label });
    for (const colour of colours) {
      const swatch = el("button", { type: "button", class: `swatch swatch-${kind}`, title: `${label}: ${colour}`, "aria-label": `${label} ${colour}`, [`data-${kind}`]: colour, disabled: !canEdit });
      swatch.style.setProperty("--swatch", colour === "transparent" ? "#fff" : colour);
      if (colour === "transparent") swatch.classList.add("is-none");
      group.append(swatch);
    }
    return group;
  };
  const action = (name, label, path, shortcut, editing = true) =>
    iconButton({ "data-action": name, disabled: editing && !canEdit }, label, path, shortcut);
  const actions = el(
    "div",
    { class: "board-group", role: "group", "aria-label": "Edit" },
    action("undo", "Undo", "M5 4L2 7l3 3M2.5 7H10a3.5 3.5 0 010 7H7", "Ctrl+Z"),
    action("redo", "Redo", "M11 4l3 3-3 3M13.5 7H6a3.5 3.5 0 000 7h3", "Ctrl+Shift+Z"),
    action("duplicate", "Duplicate", "M5.5 5.5h8v8h-8zM10.5 5.5v-3h-8v8h3", "Ctrl+D"),
    action("delete", "Delete", "M3 4.5h10M6 4.5v-2h4v2M4.5 4.5l.7 9h5.6l.7-9", "Delete"),
    action("front", "Bring to front", "M4 6.5h8v7H4zM6 4h8v7", "Ctrl+]"),
    action("back", "Send to back", "M6 4h8v7H6zM2 6.5h8v7H2z", "Ctrl+["),
  );
  const view = el(
    "div",
    { class: "board-group", role: "group", "aria-label": "View" },
    action("zoom-out", "Zoom out", "M3 8h10", "-", false),
    el("span", { class: "board-zoom", "data-zoom": true, "aria-live": "off" }, "100%"),
    action("zoom-in", "Zoom in", "M3 8h10M8 3v10", "+", false),
    action("fit", "Fit to content", "M2.5 6V2.5H6M10 2.5h3.5V6M13.5 10v3.5H10M6 13.5H2.5V10", "Shift+1", false),
  );
  const panels = el(
    "div",
    { class: "board-group", role: "group", "aria-label": "Panels" },
    el("button", { type: "button", class: "btn btn-ghost btn-sm", "data-action": "comments", "aria-pressed": "false" }, "Comments"),
    el("button", { type: "button", class: "btn btn-ghost btn-sm", "data-action": "history", "aria-pressed": "false" }, "History"),
    el(
      "details",
      { class: "board-export" },
      el("summary", { class: "btn btn-ghost btn-sm" }, "Export"),
      el(
        "div",
        { class: "board-export-menu" },
        el("label", { class: "small" }, el("input", { type: "checkbox", "data-export-selection": true }), " Selection only"),
        el("button", { type: "button", class: "btn btn-secondary btn-xs", "data-action": "export-png" }, "PNG"),
        el("button", { type: "button", class: "btn btn-secondary btn-xs", "data-action": "export-svg" }, "SVG"),
        el("button", { type: "button", class: "btn btn-secondary btn-xs", "data-action": "export-json" }, "JSON"),
      ),
    ),
  );
  const HeadingTag = standalone ? "h1" : "h2";
  // Rename and delete: the board's creator and the room's owners and admins (the server decides).
  const manage = el(
    "div",
    { class: "board-manage", "data-board-manage": true, hidden: !canManageBoard },
    el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-action": "rename-board" }, "Rename"),
    el("button", { type: "button", class: "btn btn-danger-ghost btn-xs", "data-action": "delete-board" }, "Delete board"),
  );
  const renameForm = el(
    "form",
    { class: "board-rename", "data-rename-form": true, hidden: true },
    el("input", { class: "input input-sm", name: "title", maxLength: 120, required: true, "aria-label": "Board title" }),
    el("button", { type: "submit", class: "btn btn-primary btn-xs" }, "Save"),
    el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-action": "rename-cancel" }, "Cancel"),
    el("span", { class: "field-error small", "data-rename-error": true, role: "alert" }),
  );
  const confirmDelete = el(
    "div",
    { class: "board-confirm", "data-delete-confirm": true, hidden: true, role: "alertdialog", "aria-label": "Delete the board" },
    el("span", { class: "small" }, "Delete this board for everyone, with its history and comments?"),
    el("button", { type: "button", class: "btn btn-danger btn-xs", "data-action": "delete-confirm" }, "Delete for everyone"),
    el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-action": "delete-cancel" }, "Cancel"),
    el("span", { class: "field-error small", "data-delete-error": true, role: "alert" }),
  );
  const header = el(
    "header",
    { class: "board-header" },
    el(HeadingTag, { class: "board-title", "data-board-title": true }, title),
    renameForm,
    manage,
    confirmDelete,
    el("span", { class: "board-readonly", hidden: canEdit }, "View only"),
    el("div", { class: "board-peers", "data-peers": true, "aria-label": "Who is here" }),
    el("span", { class: "board-following", "data-following": true, hidden: true }),
    el("span", { class: "conn-badge", "data-board-conn": true, "data-state": "connecting", role: "status", "aria-live": "polite" }, "Connecting…"),
  );
  const toolbar = el("div", { class: "board-toolbar", role: "toolbar", "aria-label": "Board tools" }, tools, swatches("stroke", STROKES, "Stroke"), swatches("fill", FILLS, "Fill"), actions, view, panels);
  const svgRoot = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svgRoot.setAttribute("class", "board-svg");
  svgRoot.setAttribute("data-board-svg", "");
  svgRoot.setAttribute("font-family", FONT); // inherited by every element's text (render.js)
  svgRoot.setAttribute("stroke-linejoin", "round");
  const stage = el(
    "div",
    { class: "board-stage", tabIndex: 0, "data-stage": true, "aria-label": `Board ${title}`, role: "application" },
    svgRoot,
    el("textarea", { class: "board-editor", "data-editor": true, hidden: true, "aria-label": "Edit text", spellcheck: false }),
    el("div", { class: "board-banner", "data-banner": true, hidden: true }),
  );
  const side = el("aside", { class: "board-side", "data-comments": true, hidden: true, "aria-label": "Comments" });
  const replay = el("div", { class: "board-replay", "data-replay": true, hidden: true });
  container.replaceChildren(header, toolbar, el("div", { class: "board-body" }, stage, side), replay);
  container.classList.add("board");
}

export class BoardApp {
  /**
   * container: an empty element the board is built in. board: {id, room, title}. me: {id,
   * username}. canEdit: the role may edit (viewers may not). send(frame): the page's socket.
   */
  constructor(container, { board, me, canEdit, canManage = false, send, standalone = false, initial = null }) {
    this.container = container;
    this.board = board;
    this.me = me;
    this.canEdit = canEdit;
    this.canManage = canManage;
    this.standalone = standalone;
    this.deleted = false;
    buildBoardDom(container, { title: board.title, canEdit, standalone, canManageBoard: this.#mayManageBoard() });
    const q = (selector) => container.querySelector(selector);
    this.ui = {
      stage: q("[data-stage]"),
      svg: q("[data-board-svg]"),
      editor: q("[data-editor]"),
      banner: q("[data-banner]"),
      conn: q("[data-board-conn]"),
      peers: q("[data-peers]"),
      following: q("[data-following]"),
      zoom: q("[data-zoom]"),
      title: q("[data-board-title]"),
      manage: q("[data-board-manage]"),
      renameForm: q("[data-rename-form]"),
      confirmDelete: q("[data-delete-confirm]"),
    };
    this.tool = "select";
    this.selection = [];
    this.stroke = STROKES[0];
    this.fill = FILLS[0];
    this.gesture = null;
    this.pointers = new Map(); // touch pointers, for pinch
    this.spaceDown = false;
    this.following = null;
    this.editing = null;
    this.replaying = false;
    this.socketState = "connecting";
    this.transport = "websocket"; // live.js's: "websocket" | "sse" | "poll"
    this.colour = `hsl(${avatarHue(me.id)} 70% 45%)`;
    this.renderQueued = new Set();
    this.renderAllQueued = false;
    this.frameRequested = false;
    this.pendingMove = null;
    this.peers = new Map();

    this.send = send;
    this.view = new BoardView(this.ui.svg);
    this.view.setView({ x: 0, y: 0, zoom: 1 });
    this.#newDocument();
    this.comments = new Comments(q("[data-comments]"), {
      board: board.id,
      me,
      canComment: canEdit,
      canManage,
      app: this,
    });
    this.replay = new Replay(q("[data-replay]"), { board: board.id, app: this });
    this.firstJoin = true;
    this.firstRendered = false;
    // The board's JSON, fetched while the page loads, is drawn first; the socket's board frames
    // (board.state: a large board's Y.Doc takes longer to load than its JSON to draw) wait until
    // it is on screen and painted.
    this.held = initial ? [] : null;
    initial
      ?.then((data) => {
        if (!data || this.firstRendered || !Array.isArray(data.elements)) return;
        const preview = new StaticBoard(data.elements);
        this.setView(this.#initialView(preview), { fromUser: false });
        this.view.renderAll(preview);
        this.#firstRender();
      })
      .catch((error) => console.warn("Parley: board preview", error))
      .finally(() =>
        requestAnimationFrame(() =>
          setTimeout(() => {
            const held = this.held || [];
            this.held = null;
            for (const frame of held) this.onFrame(frame);
          }, 0),
        ),
      );
    this.#bind();
    this.#paintConnection();
    this.simulator = attachSimulator(this); // the simulator's panel and canvas overlay (static/js/simulator/)
  }

  // --- the socket ------------------------------------------------------------------------------

  /** A fresh (empty) document bound to the socket; the server fills it in at board.join. */
  #newDocument() {
    this.doc = new BoardDoc({ user: this.me.id, editable: this.canEdit && !this.replaying, onChange: (ids) => this.#changed(ids) });
    this.sync = new BoardSync({
      board: this.board.id,
      boardDoc: this.doc,
      send: this.send,
      me: this.me,
      onStatus: () => this.#paintConnection(),
      onAwareness: (peers) => this.#peersChanged(peers),
      onComment: (comment) => this.comments.upsert(comment),
      onError: (frame) => this.#refused(frame),
      onJoined: () => this.#joined(),
      onGone: (frame, { certain }) => this.#joinRefused(frame, certain),
    });
    this.sync.setTransport(this.transport);
  }

  /**
   * The board could not be joined: deleted (e.g. while we were away), or we are no longer in its
   * room. A refusal that did not name the board (a socket's error frame has no `board`) is made
   * sure of first: the board's log answers 404 only when it is gone for us.
   */
  async #joinRefused(frame, certain) {
    if (this.deleted) return;
    if (!certain) {
      try {
        const url = `/api/v1/boards/${encodeURIComponent(this.board.id)}/updates/?after_sequence=${this.sync.sequence}&limit=1`;
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.status !== 404 && response.status !== 403) return; // some other frame's refusal
      } catch {
        return; // the network: the connection notices and joins again later
      }
    }
    this.#gone({ missing: true });
  }

  /**
   * The server refused one of our updates for good (forbidden, invalid, too_large): our document now
   * holds a change the server will never have, and later updates would build on it. Say why, drop
   * the local document and load the board again from the server.
   */
  #refused(frame) {
    this.#notice(frame.message || "The board refused a change.");
    const joined = this.sync.joined;
    this.sync.leave();
    this.doc.destroy();
    this.selection = [];
    this.#newDocument();
    this.view.renderAll(this.doc);
    this.firstJoin = false;
    if (joined) this.sync.connected();
    this.#paintConnection();
  }

  /** Every frame of the page's socket. */
  onFrame(frame) {
    if (this.held && frame.type.startsWith("board.")) {
      this.held.push(frame);
      return;
    }
    if (this.deleted) return; // nothing more of a deleted board
    if (frame.type === "session.ready") {
      if (this.socketState === "connected") this.sync.connected(frame);
      return;
    }
    if (frame.type === "board.renamed" && frame.board?.id === this.board.id) this.rename(frame.board.title);
    if (frame.type === "board.deleted" && frame.board?.id === this.board.id) this.#gone();
    this.sync.onFrame(frame);
  }

  /** live.js's connection states, and the transport that carries them. */
  onSocketState(state, transport = "websocket") {
    this.socketState = state;
    this.transport = transport || "websocket";
    this.sync.setTransport(this.transport);
    if (this.held && state !== "connected") this.held = []; // answers on a socket that is gone
    if (state !== "connected") this.sync.disconnected();
    this.#paintConnection();
  }

  /** The reader's role changed (e.g. a viewer made a member): tools follow. */
  setCanEdit(canEdit) {
    if (canEdit === this.canEdit) return;
    this.canEdit = canEdit;
    this.doc.editable = canEdit && !this.replaying;
    this.comments.canComment = canEdit;
    this.comments.form.hidden = !canEdit;
    this.comments.render();
    for (const control of this.container.querySelectorAll("[data-tool], [data-stroke], [data-fill], [data-action]")) {
      const viewing = control.dataset.tool === "select" || ["zoom-in", "zoom-out", "fit", "comments", "history"].includes(control.dataset.action) || control.dataset.action?.startsWith("export-");
      control.disabled = !canEdit && !viewing;
    }
    this.container.querySelector(".board-readonly").hidden = canEdit;
    this.#paintManage();
    if (!canEdit) {
      this.stopEditing();
      this.setTool("select");
    }
    this.#paintSelection();
  }

  rename(title) {
    this.board.title = title;
    this.ui.title.textContent = title;
    if (this.standalone) document.title = document.title.replace(/^[^·]*·/, `${title} ·`);
  }

  /** Rename and delete: the board's creator, and the room's owners and admins, while they may edit. */
  #mayManageBoard() {
    return Boolean(this.canEdit && (this.canManage || (this.board.created_by && this.board.created_by.id === this.me.id)));
  }

  #paintManage() {
    const may = this.#mayManageBoard() && !this.deleted;
    this.ui.manage.hidden = !may || !this.ui.renameForm.hidden;
    for (const button of this.ui.manage.querySelectorAll("button")) button.disabled = !may;
    if (!may) {
      this.ui.renameForm.hidden = true;
      this.ui.confirmDelete.hidden = true;
      this.ui.title.hidden = false;
    }
  }

  #startRename() {
    const form = this.ui.renameForm;
    const input = form.elements.title;
    input.value = this.board.title;
    form.querySelector("[data-rename-error]").textContent = "";
    this.ui.title.hidden = true;
    this.ui.confirmDelete.hidden = true;
    form.hidden = false;
    this.#paintManage();
    input.focus();
    input.select();
  }

  #endRename() {
    this.ui.renameForm.hidden = true;
    this.ui.title.hidden = false;
    this.#paintManage();
  }

  async #submitRename() {
    const form = this.ui.renameForm;
    const title = form.elements.title.value.trim();
    if (!title) return;
    if (title === this.board.title) {
      this.#endRename();
      return;
    }
    try {
      const board = await sendJson("PATCH", `/api/v1/boards/${encodeURIComponent(this.board.id)}/`, { title });
      this.rename(board.title); // others (and our other tabs) hear board.renamed
      this.#endRename();
    } catch (error) {
      form.querySelector("[data-rename-error]").textContent = error.message || "Could not rename the board.";
    }
  }

  async #confirmDelete() {
    const error = this.ui.confirmDelete.querySelector("[data-delete-error]");
    error.textContent = "";
    try {
      const response = await fetch(`/api/v1/boards/${encodeURIComponent(this.board.id)}/`, {
        method: "DELETE",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      });
      if (!response.ok && response.status !== 404) {
        const body = await response.json().catch(() => null);
        throw new Error(body?.error?.message || `Could not delete the board (${response.status}).`);
      }
      this.#gone({ byMe: true });
    } catch (failure) {
      error.textContent = failure.message || "Could not delete the board.";
    }
  }

  /**
   * The board was deleted (by us, or board.deleted from someone else), or could not be joined
   * (`missing`: deleted while we were away, or we left its room): nothing more to do on it. The
   * board's page says so and takes its reader back to the room a few seconds later (the split
   * view closes: board/split.js).
   */
  #gone({ byMe = false, missing = false } = {}) {
    if (this.deleted) return;
    this.deleted = true;
    this.container.dataset.deleted = "true";
    this.stopEditing();
    this.sync.leave();
    this.setCanEdit(false);
    this.#paintManage();
    const what = byMe ? "You deleted this board." : missing ? "This board no longer exists, or you are no longer in its room." : "This board was deleted.";
    if (this.standalone) {
      const room = `/rooms/${encodeURIComponent(this.board.room)}/`;
      const wait = window.PARLEY_TEST_TIMINGS?.boardGoneRedirectMs ?? GONE_REDIRECT_MS;
      this.ui.banner.replaceChildren(`${what} Taking you back to the room… `, el("a", { href: room }, "Back to the room"));
      this.ui.banner.hidden = false;
      this.ui.banner.setAttribute("role", "alert");
      setTimeout(() => location.assign(room), wait);
    } else this.#notice(what);
    this.onGone?.(what);
  }

  /** The board is on screen for the first time: fit it, and mark the moment (docs/performance.md:
   * time to first render is this mark's time from the navigation's start). */
  #firstRender() {
    this.firstRendered = true;
    this.#paintSelection();
    const size = this.view.source.size;
    performance.mark("parley-board-rendered", { detail: { elements: size } });
    this.container.dataset.rendered = String(size);
    // ...and once the browser has laid it out and painted it (the next frame's task).
    requestAnimationFrame(() => setTimeout(() => performance.mark("parley-board-painted"), 0));
  }

  #joined() {
    if (this.firstJoin) {
      this.firstJoin = false;
      if (!this.firstRendered) this.setView(this.#initialView(this.doc), { fromUser: false });
      this.#frame(); // draw the document now, not on the next animation frame
      if (!this.firstRendered) this.#firstRender();
      performance.mark("parley-board-live"); // the live document is on screen and editable
      this.container.dataset.live = "true";
      this.comments.load();
    } else this.comments.load();
    this.#publishAwareness();
    this.#paintConnection();
  }

  #paintConnection() {
    const badge = this.ui.conn;
    let state = this.socketState;
    if (state === "connected" && !this.sync.joined) state = "connecting";
    const pending = this.sync.outbox.size;
    badge.dataset.state = state;
    badge.dataset.pending = String(pending);
    badge.dataset.sequence = String(this.sync.sequence);
    badge.dataset.transport = this.transport;
    let text = (CONNECTION_TEXT[state] || state) + (state === "connected" ? TRANSPORT_TEXT[this.transport] || "" : "");
    if (state !== "connected" && pending) text += ` · ${pending} change${pending === 1 ? "" : "s"} waiting`;
    badge.textContent = text;
  }

  #notice(text) {
    this.ui.banner.textContent = text;
    this.ui.banner.hidden = !text;
  }

  // --- drawing ---------------------------------------------------------------------------------

  #changed(ids) {
    if (this.replaying) return;
    for (const id of ids) this.renderQueued.add(id);
    this.#requestFrame();
  }

  #requestFrame() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => this.#frame());
  }

  /** Draw what changed since the last frame; apply the latest pointer move of a gesture. */
  #frame() {
    this.frameRequested = false;
    if (this.pendingMove) {
      const move = this.pendingMove;
      this.pendingMove = null;
      this.#applyMove(move);
    }
    if (this.replaying) return;
    if (this.view.source !== this.doc) {
      // The JSON preview (or nothing) is on screen: take the live document over it.
      this.renderQueued.clear();
      this.view.adopt(this.doc);
      this.#paintSelection();
      this.view.renderPeers(this.peers);
      this.comments.paintBadges();
    } else if (this.renderQueued.size) {
      const ids = this.renderQueued;
      this.renderQueued = new Set();
      this.view.renderChanged(ids);
      this.selection = this.selection.filter((id) => this.doc.has(id));
      this.#paintSelection();
      this.view.renderPeers(this.peers);
      this.comments.paintBadges();
    }
  }

  /** Re-draw everything (after replay, or in tests). */
  redraw() {
    this.view.renderAll(this.doc);
    this.#paintSelection();
    this.view.renderPeers(this.peers);
    this.comments.paintBadges();
  }

  #paintSelection() {
    if (this.replaying) return;
    this.view.renderSelection(this.selection, { handles: this.canEdit });
    this.container.dataset.selection = this.selection.join(",");
  }

  setSelection(ids) {
    this.selection = [...new Set(ids)];
    this.#paintSelection();
    this.#publishAwareness();
  }

  setView(view, { fromUser = true } = {}) {
    this.view.setView({ x: view.x, y: view.y, zoom: clampZoom(view.zoom) });
    this.ui.zoom.textContent = `${Math.round(this.view.view.zoom * 100)}%`;
    if (fromUser && this.following) this.follow(null);
    this.#paintSelection();
    this.view.renderPeers(this.peers);
    this.comments.paintBadges();
    this.#publishAwareness();
  }

  /**
   * Where a board opens: fitted to its content, or for a big one (over BIG_BOARD elements) at
   * 100 % on its top-left corner, so that opening it draws what is on screen rather than every
   * element at a few pixels each (Shift+1 fits it whole).
   */
  #initialView(source) {
    const rect = this.ui.stage.getBoundingClientRect();
    const box = source.boundsOf();
    if (!box) return { x: -rect.width / 2, y: -rect.height / 2, zoom: 1 };
    if (source.size > BIG_BOARD) return { x: box.x - 40, y: box.y - 40, zoom: 1 };
    return fitView(box, rect.width, rect.height);
  }

  fit() {
    const rect = this.ui.stage.getBoundingClientRect();
    const box = (this.view.source || this.doc).boundsOf();
    if (!box) {
      this.setView({ x: -rect.width / 2, y: -rect.height / 2, zoom: 1 });
      return;
    }
    this.setView(fitView(box, rect.width, rect.height));
  }

  zoomBy(factor, screen = null) {
    const rect = this.ui.stage.getBoundingClientRect();
    const at = screen || { x: rect.width / 2, y: rect.height / 2 };
    this.setView(zoomAt(this.view.view, at, this.view.view.zoom * factor));
  }

  setTool(tool) {
    if (!this.canEdit && tool !== "select") return;
    this.tool = tool;
    for (const button of this.container.querySelectorAll("[data-tool]")) {
      button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
    }
    this.ui.stage.dataset.tool = tool;
  }

  // --- awareness, peers, follow ----------------------------------------------------------------

  #publishAwareness() {
    if (!this.sync) return;
    this.sync.setAwareness({
      cursor: this.cursor || null,
      selection: this.selection.slice(0, 200),
      viewport: { x: this.view.view.x, y: this.view.view.y, zoom: this.view.view.zoom },
      name: this.me.display_name || this.me.username,
      colour: this.colour,
    });
  }

  #peersChanged(peers) {
    this.peers = peers;
    this.view.renderPeers(peers);
    this.#paintAvatars();
    if (this.following) {
      const peer = peers.get(this.following);
      const viewport = peer?.state?.viewport;
      if (!peer) this.follow(null);
      else if (viewport && Number.isFinite(viewport.x) && Number.isFinite(viewport.y) && Number.isFinite(viewport.zoom)) {
        this.setView(viewport, { fromUser: false });
      }
    }
  }

  #paintAvatars() {
    const myName = this.me.display_name || this.me.username;
    const bubbles = [el("span", { class: "avatar avatar-sm board-me", title: `${myName} (you)`, "data-peer-user": this.me.id }, myName.slice(0, 1).toUpperCase())];
    bubbles[0].style.setProperty("--avatar-hue", avatarHue(this.me.id));
    const seen = new Set();
    for (const [key, { user, state }] of this.peers) {
      const id = user?.id;
      if (id === undefined || seen.has(key)) continue;
      seen.add(key);
      const name = user.display_name || user.username;
      const button = el(
        "button",
        { type: "button", class: "avatar avatar-sm board-peer", title: `Follow ${name}`, "aria-label": `Follow ${name}`, "data-peer": key, "data-peer-user": id, "aria-pressed": String(this.following === key) },
        name.slice(0, 1).toUpperCase(),
      );
      button.style.setProperty("--avatar-hue", avatarHue(id));
      if (state?.colour) button.style.setProperty("--peer-colour", state.colour);
      bubbles.push(button);
    }
    this.ui.peers.replaceChildren(...bubbles);
  }

  /** Follow a peer's viewport (null: stop). */
  follow(key) {
    this.following = key && this.peers.has(key) ? key : null;
    const peer = this.following && this.peers.get(this.following);
    this.ui.following.hidden = !peer;
    this.ui.following.textContent = peer ? `Following ${peer.user.display_name || peer.user.username}` : "";
    this.#paintAvatars();
    if (peer?.state?.viewport) this.setView(peer.state.viewport, { fromUser: false });
  }

  // --- input -----------------------------------------------------------------------------------

  #bind() {
    const stage = this.ui.stage;
    this.container.addEventListener("click", (event) => this.#onClick(event));
    stage.addEventListener("pointerdown", (event) => this.#onPointerDown(event));
    stage.addEventListener("pointermove", (event) => this.#onPointerMove(event));
    stage.addEventListener("pointerup", (event) => this.#onPointerUp(event));
    stage.addEventListener("pointercancel", (event) => this.#onPointerUp(event, true));
    stage.addEventListener("pointerleave", () => {
      this.cursor = null;
      this.#publishAwareness();
    });
    stage.addEventListener("dblclick", (event) => this.#onDoubleClick(event));
    stage.addEventListener("wheel", (event) => this.#onWheel(event), { passive: false });
    this.container.addEventListener("keydown", (event) => this.#onKeyDown(event));
    this.container.addEventListener("keyup", (event) => {
      if (event.key === " ") {
        this.spaceDown = false;
        stage.classList.remove("is-panning");
      }
    });
    this.ui.renameForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submitRename();
    });
    this.ui.renameForm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.#endRename();
    });
    this.ui.editor.addEventListener("input", () => this.#editorInput());
    this.ui.editor.addEventListener("blur", () => this.stopEditing());
    this.ui.editor.addEventListener("keydown", (event) => {
      if (event.key === "Escape" || (event.key === "Enter" && (event.ctrlKey || event.metaKey))) {
        event.preventDefault();
        this.stopEditing();
        stage.focus();
      }
      event.stopPropagation();
    });
    new ResizeObserver(() => {
      this.view.resized();
      this.#paintSelection();
    }).observe(stage);
  }

  #onClick(event) {
    const target = event.target.closest("button, [data-comment-element], [data-comment-thread]");
    if (!target || !this.container.contains(target)) return;
    if (target.dataset.commentElement) this.comments.openFor(target.dataset.commentElement);
    else if (target.dataset.commentThread) this.comments.openFor(null);
    else if (target.dataset.tool) this.setTool(target.dataset.tool);
    else if (target.dataset.stroke) this.#setColour("stroke", target.dataset.stroke);
    else if (target.dataset.fill) this.#setColour("fill", target.dataset.fill);
    else if (target.dataset.peer) this.follow(this.following === target.dataset.peer ? null : target.dataset.peer);
    else if (target.dataset.action) this.#action(target.dataset.action, target);
  }

  #setColour(kind, colour) {
    this[kind] = colour;
    for (const swatch of this.container.querySelectorAll(`[data-${kind}]`)) {
      swatch.classList.toggle("is-active", swatch.dataset[kind] === colour);
    }
    if (this.selection.length) {
      this.doc.stopCapturing();
      this.doc.updateMany(new Map(this.selection.map((id) => [id, { [kind]: colour }])));
    }
  }

  async #action(name, button) {
    const selectionOnly = this.container.querySelector("[data-export-selection]").checked && this.selection.length;
    const ids = selectionOnly ? this.selection : null;
    const filename = safeFilename(this.board.title);
    if (name.startsWith("export-")) button.closest("details")?.removeAttribute("open");
    switch (name) {
      case "undo":
        this.doc.undo();
        break;
      case "redo":
        this.doc.redo();
        break;
      case "duplicate":
        this.duplicate();
        break;
      case "delete":
        this.deleteSelection();
        break;
      case "front":
      case "back":
        this.doc.stopCapturing();
        this.doc.reorder(this.selection, name);
        break;
      case "rename-board":
        this.#startRename();
        break;
      case "rename-cancel":
        this.#endRename();
        break;
      case "delete-board":
        this.ui.confirmDelete.querySelector("[data-delete-error]").textContent = "";
        this.ui.confirmDelete.hidden = false;
        this.ui.confirmDelete.querySelector('[data-action="delete-cancel"]').focus();
        break;
      case "delete-cancel":
        this.ui.confirmDelete.hidden = true;
        break;
      case "delete-confirm":
        await this.#confirmDelete();
        break;
      case "zoom-in":
        this.zoomBy(1.25);
        break;
      case "zoom-out":
        this.zoomBy(0.8);
        break;
      case "fit":
        this.fit();
        break;
      case "comments":
        button.setAttribute("aria-pressed", String(this.comments.toggle()));
        break;
      case "history":
        button.setAttribute("aria-pressed", String(await this.replay.toggle()));
        break;
      case "export-svg":
        download(new Blob([exportSvgText(this.#shown(), ids).text], { type: "image/svg+xml" }), `${filename}.svg`);
        break;
      case "export-png":
        download(await exportPngBlob(this.#shown(), ids), `${filename}.png`);
        break;
      case "export-json": {
        const data = await getJson(`/api/v1/boards/${encodeURIComponent(this.board.id)}/export/`);
        download(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }), `${filename}.json`);
        break;
      }
      default:
    }
  }

  /** What is on screen: the live document, or the replayed one. */
  #shown() {
    return this.replaying ? this.view.source : this.doc;
  }

  duplicate() {
    if (!this.selection.length) return;
    this.doc.stopCapturing();
    const ids = this.doc.duplicate(this.selection);
    if (ids.length) this.setSelection(ids);
  }

  deleteSelection() {
    if (!this.selection.length) return;
    this.doc.stopCapturing();
    this.doc.remove(this.selection);
    this.setSelection([]);
  }

  #point(event) {
    const rect = this.ui.stage.getBoundingClientRect();
    const screen = { x: event.clientX - rect.left, y: event.clientY - rect.top };
    return { screen, board: toBoard(this.view.view, screen) };
  }

  #onPointerDown(event) {
    if (event.target === this.ui.editor) return;
    this.ui.stage.focus({ preventScroll: true });
    const { screen, board: p } = this.#point(event);
    if (event.pointerType === "touch") {
      this.pointers.set(event.pointerId, screen);
      if (this.pointers.size === 2) {
        this.#cancelGesture();
        const [a, b] = [...this.pointers.values()];
        this.gesture = { kind: "pinch", distance: Math.hypot(a.x - b.x, a.y - b.y), mid: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }, view: { ...this.view.view } };
        return;
      }
    }
    if (this.editing) this.stopEditing();
    this.ui.stage.setPointerCapture?.(event.pointerId);
    if (event.button === 1 || (event.button === 0 && this.spaceDown)) {
      this.gesture = { kind: "pan", start: screen, view: { ...this.view.view } };
      this.ui.stage.classList.add("is-panning");
      return;
    }
    if (event.button !== 0 || this.replaying) {
      if (this.replaying && event.button === 0) this.gesture = { kind: "pan", start: screen, view: { ...this.view.view } };
      return;
    }
    const tolerance = 5 / this.view.view.zoom;
    const tool = this.canEdit ? this.tool : "select";
    if (tool === "select") {
      const handle = event.target.closest?.("[data-handle]")?.dataset.handle;
      if (handle === "rotate" && this.canEdit && this.selection.length === 1 && this.doc.get(this.selection[0])) {
        const element = this.doc.get(this.selection[0]);
        this.doc.stopCapturing();
        this.gesture = { kind: "rotate", id: element.id, centre: center(shapeBox(element)), start: p, original: rotationOf(element) };
        return;
      }
      if (handle && handle !== "rotate" && this.canEdit && this.selection.length) {
        this.doc.stopCapturing();
        this.gesture = { kind: "resize", handle, box: this.doc.boundsOf(this.selection), originals: this.#originals(this.selection) };
        return;
      }
      const hit = topmostAt(this.doc.sorted(), p, tolerance, this.doc.lookup);
      if (hit) {
        if (event.shiftKey) {
          const selected = this.selection.includes(hit.id);
          this.setSelection(selected ? this.selection.filter((id) => id !== hit.id) : [...this.selection, hit.id]);
          if (selected) return;
        } else if (!this.selection.includes(hit.id)) this.setSelection([hit.id]);
        if (this.canEdit) {
          this.doc.stopCapturing();
          this.gesture = { kind: "move", start: p, originals: this.#originals(this.selection), moved: false };
        }
        return;
      }
      if (!event.shiftKey) this.setSelection([]);
      this.gesture = { kind: "box", start: p, base: event.shiftKey ? [...this.selection] : [] };
      return;
    }
    this.doc.stopCapturing();
    const style = { stroke: this.stroke };
    if (tool === "pen") {
      const id = this.doc.add({ type: "pen", x: p.x, y: p.y, points: [0, 0], ...style, strokeWidth: 2 });
      this.gesture = { kind: "pen", id, origin: p, points: [0, 0] };
    } else if (tool === "arrow") {
      const from = topmostAt(this.doc.sorted(), p, tolerance, this.doc.lookup, (element) => !SHAPES.has(element.type));
      const id = this.doc.add({ type: "arrow", x: p.x, y: p.y, points: [0, 0, 0, 0], from: from?.id ?? null, to: null, ...style });
      this.gesture = { kind: "arrow", id, origin: p };
    } else if (tool === "text") {
      const [w, h] = DEFAULT_SIZE.text;
      const id = this.doc.add({ type: "text", x: p.x, y: p.y - h / 2, w, h, text: "", fontSize: DEFAULTS.fontSize, ...style });
      this.setSelection([id]);
      this.setTool("select");
      // The editor opens on pointerup: the press would move the focus back to the stage.
      this.gesture = { kind: "text", id };
    } else {
      const fill = tool === "sticky" ? DEFAULTS.sticky : this.fill;
      const id = this.doc.add({ type: tool, x: p.x, y: p.y, w: 0, h: 0, text: "", fontSize: DEFAULTS.fontSize, ...style, fill });
      this.gesture = { kind: "shape", id, origin: p, tool };
    }
  }

  #originals(ids) {
    return new Map(ids.map((id) => [id, this.doc.get(id)]).filter(([, element]) => element));
  }

  #onPointerMove(event) {
    const { screen, board: p } = this.#point(event);
    if (event.pointerType === "touch" && this.pointers.has(event.pointerId)) this.pointers.set(event.pointerId, screen);
    this.cursor = { x: Math.round(p.x * 10) / 10, y: Math.round(p.y * 10) / 10 };
    this.#publishAwareness();
    if (!this.gesture) return;
    this.pendingMove = { screen, p, shift: event.shiftKey };
    this.#requestFrame();
  }

  #applyMove({ screen, p, shift }) {
    const gesture = this.gesture;
    if (!gesture) return;
    switch (gesture.kind) {
      case "pinch": {
        const [a, b] = [...this.pointers.values()];
        if (!a || !b) return;
        const distance = Math.hypot(a.x - b.x, a.y - b.y);
        const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
        const zoomed = zoomAt(gesture.view, gesture.mid, gesture.view.zoom * (distance / Math.max(gesture.distance, 1)));
        this.setView({ x: zoomed.x - (mid.x - gesture.mid.x) / zoomed.zoom, y: zoomed.y - (mid.y - gesture.mid.y) / zoomed.zoom, zoom: zoomed.zoom });
        break;
      }
      case "pan":
        this.setView({ x: gesture.view.x - (screen.x - gesture.start.x) / gesture.view.zoom, y: gesture.view.y - (screen.y - gesture.start.y) / gesture.view.zoom, zoom: gesture.view.zoom });
        break;
      case "box":
        gesture.box = normRect(gesture.start.x, gesture.start.y, p.x, p.y);
        this.view.renderDraft(gesture.box);
        break;
      case "move":
        this.#moveSelection(gesture, p.x - gesture.start.x, p.y - gesture.start.y);
        break;
      case "resize": {
        const box = resizeBox(gesture.box, gesture.handle, p, { keepRatio: shift });
        const changes = new Map();
        for (const [id, original] of gesture.originals) changes.set(id, scaleInto(original, gesture.box, box));
        this.doc.updateMany(changes);
        this.doc.updateMany(this.doc.arrowEndsFor([...gesture.originals.keys()]));
        break;
      }
      case "rotate": {
        const turned = rotationBetween(gesture.original, gesture.centre, gesture.start, p);
        this.doc.update(gesture.id, { angle: shift ? snapRotation(turned) : Math.round(turned * 10) / 10 });
        const arrows = this.doc.arrowEndsFor([gesture.id]);
        if (arrows.size) this.doc.updateMany(arrows);
        break;
      }
      case "shape": {
        let box = normRect(gesture.origin.x, gesture.origin.y, p.x, p.y);
        if (shift) {
          const side = Math.max(box.w, box.h);
          box = normRect(gesture.origin.x, gesture.origin.y, gesture.origin.x + Math.sign(p.x - gesture.origin.x || 1) * side, gesture.origin.y + Math.sign(p.y - gesture.origin.y || 1) * side);
        }
        this.doc.update(gesture.id, box);
        break;
      }
      case "arrow": {
        const tolerance = 5 / this.view.view.zoom;
        const to = topmostAt(this.doc.sorted(), p, tolerance, this.doc.lookup, (element) => !SHAPES.has(element.type) || element.id === this.doc.get(gesture.id)?.from);
        this.doc.update(gesture.id, { points: [0, 0, p.x - gesture.origin.x, p.y - gesture.origin.y], to: to?.id ?? null });
        break;
      }
      case "pen": {
        const x = Math.round((p.x - gesture.origin.x) * 10) / 10;
        const y = Math.round((p.y - gesture.origin.y) * 10) / 10;
        const n = gesture.points.length;
        if (Math.hypot(x - gesture.points[n - 2], y - gesture.points[n - 1]) < 1.5 / this.view.view.zoom) return;
        gesture.points.push(x, y);
        this.doc.update(gesture.id, { points: [...gesture.points] });
        break;
      }
      default:
    }
  }

  #moveSelection(gesture, dx, dy) {
    gesture.moved = gesture.moved || dx !== 0 || dy !== 0;
    const changes = new Map();
    const moving = new Set(gesture.originals.keys());
    for (const [id, original] of gesture.originals) {
      const props = { x: (original.x || 0) + dx, y: (original.y || 0) + dy };
      if (original.type === "arrow") {
        // An arrow dragged away from a shape that stays put lets go of it.
        const { start, end } = connectorEnds(original, this.doc.lookup);
        if ((original.from && !moving.has(original.from)) || (original.to && !moving.has(original.to))) {
          Object.assign(props, { x: start.x + dx, y: start.y + dy, points: [0, 0, end.x - start.x, end.y - start.y] });
          if (original.from && !moving.has(original.from)) props.from = null;
          if (original.to && !moving.has(original.to)) props.to = null;
        }
      }
      changes.set(id, props);
    }
    this.doc.updateMany(changes);
    const arrows = this.doc.arrowEndsFor([...moving]);
    if (arrows.size) this.doc.updateMany(arrows);
  }

  #onPointerUp(event, cancelled = false) {
    this.pointers.delete(event.pointerId);
    if (this.pendingMove) {
      const move = this.pendingMove;
      this.pendingMove = null;
      this.#applyMove(move);
    }
    const gesture = this.gesture;
    this.gesture = null;
    this.ui.stage.classList.remove("is-panning");
    if (!gesture) return;
    const { board: p } = this.#point(event);
    switch (gesture.kind) {
      case "box": {
        this.view.renderDraft(null);
        if (gesture.box && !cancelled) this.setSelection([...gesture.base, ...idsInBox(this.doc.sorted(), gesture.box, this.doc.lookup)]);
        break;
      }
      case "shape": {
        const element = this.doc.get(gesture.id);
        if (element && element.w < 4 && element.h < 4) {
          const [w, h] = DEFAULT_SIZE[gesture.tool] || DEFAULT_SIZE.rect;
          this.doc.update(gesture.id, { x: gesture.origin.x - w / 2, y: gesture.origin.y - h / 2, w, h });
        }
        this.setSelection([gesture.id]);
        this.setTool("select");
        if (gesture.tool === "sticky") this.startEditing(gesture.id);
        break;
      }
      case "arrow": {
        const element = this.doc.get(gesture.id);
        const length = Math.hypot(p.x - gesture.origin.x, p.y - gesture.origin.y);
        if (element && length < 4 && !element.to) this.doc.update(gesture.id, { points: [0, 0, 120, 0] });
        this.setSelection([gesture.id]);
        this.setTool("select");
        break;
      }
      case "pen":
        this.setSelection([]);
        break;
      case "text":
        this.startEditing(gesture.id, { created: true });
        break;
      case "move":
      case "resize":
      case "rotate":
        this.doc.stopCapturing();
        this.#paintSelection();
        break;
      default:
    }
  }

  #cancelGesture() {
    const gesture = this.gesture;
    this.gesture = null;
    if (gesture?.kind === "box") this.view.renderDraft(null);
  }

  #onWheel(event) {
    event.preventDefault();
    const { screen } = this.#point(event);
    if (event.ctrlKey || event.metaKey) {
      this.setView(zoomAt(this.view.view, screen, this.view.view.zoom * Math.exp(-event.deltaY * 0.01)));
    } else {
      const zoom = this.view.view.zoom;
      const dx = event.shiftKey && !event.deltaX ? event.deltaY : event.deltaX;
      const dy = event.shiftKey && !event.deltaX ? 0 : event.deltaY;
      this.setView({ x: this.view.view.x + dx / zoom, y: this.view.view.y + dy / zoom, zoom });
    }
  }

  #onDoubleClick(event) {
    if (!this.canEdit || this.replaying) return;
    const { board: p } = this.#point(event);
    const hit = topmostAt(this.doc.sorted(), p, 5 / this.view.view.zoom, this.doc.lookup, (element) => !SHAPES.has(element.type));
    if (hit) {
      this.setSelection([hit.id]);
      this.startEditing(hit.id);
    } else if (this.tool === "select") {
      const [w, h] = DEFAULT_SIZE.text;
      this.doc.stopCapturing();
      const id = this.doc.add({ type: "text", x: p.x, y: p.y - h / 2, w, h, text: "", fontSize: DEFAULTS.fontSize, stroke: this.stroke });
      this.setSelection([id]);
      this.startEditing(id, { created: true });
    }
  }

  #onKeyDown(event) {
    const target = event.target;
    if (target.closest("input, textarea, select, [contenteditable]") || !this.container.contains(target)) return;
    if (target.closest(".board-side, .board-replay")) return;
    const key = event.key;
    const mod = event.ctrlKey || event.metaKey;
    let handled = true;
    if (key === " ") {
      this.spaceDown = true;
      this.ui.stage.classList.add("is-panning");
    } else if (mod && key.toLowerCase() === "z") event.shiftKey ? this.doc.redo() : this.doc.undo();
    else if (mod && key.toLowerCase() === "y") this.doc.redo();
    else if (mod && key.toLowerCase() === "d") this.duplicate();
    else if (mod && key.toLowerCase() === "a") this.setSelection(this.doc.sorted().map((element) => element.id));
    else if (mod && key === "]") this.doc.reorder(this.selection, "front");
    else if (mod && key === "[") this.doc.reorder(this.selection, "back");
    else if (key === "Delete" || key === "Backspace") this.deleteSelection();
    else if (key === "Escape") {
      this.setSelection([]);
      this.setTool("select");
      this.follow(null);
    } else if (key === "Enter" && this.selection.length === 1) this.startEditing(this.selection[0]);
    else if (key === "!" || (event.shiftKey && event.code === "Digit1")) this.fit();
    else if (key === "+" || key === "=") this.zoomBy(1.25);
    else if (key === "-") this.zoomBy(0.8);
    else if (key === "0" && !mod) this.setView({ ...this.view.view, zoom: 1 });
    else if (key.startsWith("Arrow") && this.selection.length && this.canEdit) {
      const step = event.shiftKey ? 10 : 1;
      const dx = key === "ArrowLeft" ? -step : key === "ArrowRight" ? step : 0;
      const dy = key === "ArrowUp" ? -step : key === "ArrowDown" ? step : 0;
      this.#moveSelection({ originals: this.#originals(this.selection) }, dx, dy);
    } else if (!mod && !event.altKey && KEY_TOOLS[key.toLowerCase()]) this.setTool(KEY_TOOLS[key.toLowerCase()]);
    else handled = false;
    if (handled) event.preventDefault();
  }

  // --- text in place ---------------------------------------------------------------------------

  startEditing(id, { created = false } = {}) {
    const element = this.doc.get(id);
    if (!element || !this.canEdit || !SHAPES.has(element.type)) return;
    this.editing = { id, created };
    this.doc.stopCapturing();
    this.view.setEditing(id);
    const editor = this.ui.editor;
    editor.value = element.text || "";
    this.#placeEditor();
    editor.hidden = false;
    editor.focus();
    editor.select();
  }

  #placeEditor() {
    if (!this.editing) return;
    const element = this.doc.get(this.editing.id);
    if (!element) return;
    const box = bounds(element, this.doc.lookup);
    const zoom = this.view.view.zoom;
    const editor = this.ui.editor;
    editor.style.left = `${(box.x - this.view.view.x) * zoom}px`;
    editor.style.top = `${(box.y - this.view.view.y) * zoom}px`;
    editor.style.width = `${Math.max(box.w, 60) * zoom}px`;
    editor.style.height = `${Math.max(box.h, 28) * zoom}px`;
    editor.style.fontSize = `${(element.fontSize || DEFAULTS.fontSize) * zoom}px`;
    editor.style.fontFamily = FONT;
    editor.dataset.type = element.type;
  }

  #editorInput() {
    if (!this.editing) return;
    const element = this.doc.get(this.editing.id);
    if (!element) return;
    const text = this.ui.editor.value;
    const props = { text };
    if (element.type === "text") {
      const fontSize = element.fontSize || DEFAULTS.fontSize;
      const longest = Math.max(...text.split("\n").map((line) => line.length), 1);
      props.w = Math.max(element.w || 0, Math.min(800, longest * fontSize * 0.6 + 16));
      props.h = wrapText(text, props.w - 12, fontSize).length * fontSize * 1.25 + 12;
    }
    this.doc.update(this.editing.id, props);
    this.#placeEditor();
  }

  stopEditing() {
    const editing = this.editing;
    if (!editing) return;
    this.editing = null;
    this.ui.editor.hidden = true;
    this.view.setEditing(null);
    const element = this.doc.get(editing.id);
    if (element && element.type === "text" && !String(element.text || "").trim()) {
      this.doc.remove([editing.id]);
      this.setSelection([]);
    }
    this.doc.stopCapturing();
    this.renderQueued.add(editing.id);
    this.#requestFrame();
  }

  // --- replay ----------------------------------------------------------------------------------

  /** Show a read-only document instead of the live one (null: back to live). */
  showReplay(source, touched = []) {
    if (source) {
      if (this.editing) this.stopEditing();
      this.replaying = true;
      this.doc.editable = false; // read-only while scrubbing: every change method does nothing
      this.setSelection([]);
      this.container.dataset.replaying = "true";
      this.view.renderAll(source);
      this.view.renderSelection(touched.filter((id) => source.has(id)), { handles: false });
      this.view.renderPeers(new Map());
      this.view.renderBadges(new Map(), []);
    } else {
      this.replaying = false;
      this.doc.editable = this.canEdit;
      delete this.container.dataset.replaying;
      this.renderQueued.clear();
      this.redraw();
    }
  }

  destroy() {
    this.sync.leave();
    this.replay.close();
    this.doc.destroy();
  }
}
