// The room page's boards: the list (live: board.created / renamed / deleted, read again after
// every reconnect), a form to create one, and the split view, a board opened next to the chat on
// the page's one connection. A board deleted while it is open next to the chat (live, or found
// missing after a reconnect) closes, and the panel says so. Over SSE or long-polling the page's
// stream follows the open board (`follow`: live.js setBoards) and its writes go over REST, as on
// the board's own page (board/sync.js).
import { el } from "../dom.js";
import { getJson, sendJson } from "../api.js";
import { BoardApp } from "./app.js";
import { attachTemplatePicker } from "../simulator/templates.js";

export const boardHref = (room, board) => `/rooms/${encodeURIComponent(room)}/boards/${encodeURIComponent(board)}/`;

export class BoardsPanel {
  /** room: {id}; me; can(ability); send(frame); follow(boardIds): the boards the page's stream
   * follows (SSE, long-polling); layout: the element that gets .has-board. */
  constructor({ room, me, can, send, follow = () => {}, list, form, split, layout }) {
    this.room = room;
    this.me = me;
    this.can = can;
    this.send = send;
    this.follow = follow;
    this.list = list;
    this.form = form;
    this.split = split;
    this.layout = layout;
    this.boards = new Map();
    this.app = null;
    this.ready = false;
    this.socketState = "connecting";
    this.transport = "websocket";
    // What happened to a board that was open here (e.g. "“Roadmap” was deleted.").
    this.status = el("p", { class: "muted small board-status", role: "status", "data-boards-status": true, hidden: true });
    list.before(this.status);
    form?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-open-board]");
      if (button) this.open(button.dataset.openBoard);
    });
    this.refreshForm();
    attachTemplatePicker(this); // "New from template" (static/js/simulator/templates.js)
  }

  /** The reader's role may have changed: the create form and the open board follow. */
  refreshForm() {
    if (this.form) this.form.hidden = !this.can("send");
    this.app?.setCanEdit(this.can("send"));
  }

  async load() {
    try {
      const data = await getJson(`/api/v1/rooms/${encodeURIComponent(this.room.id)}/boards/`);
      this.boards = new Map((data.results || data.boards || []).map((board) => [board.id, board]));
      this.render();
      const open = this.app?.board;
      if (open && !this.boards.has(open.id)) this.closeGone(open); // deleted while we were away
    } catch (error) {
      console.warn("Parley: boards", error);
    }
  }

  render() {
    const rows = [...this.boards.values()]
      .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)))
      .map((board) =>
        el(
          "li",
          { class: "board-row", "data-board-id": board.id },
          el("a", { href: boardHref(this.room.id, board.id), class: "board-link" }, board.title),
          el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-open-board": board.id, title: "Open next to the chat" }, "Open here"),
        ),
      );
    if (!rows.length) rows.push(el("li", { class: "muted small", "data-boards-empty": true }, "No boards yet."));
    this.list.replaceChildren(...rows);
  }

  async create() {
    const input = this.form.querySelector("input");
    const title = input.value.trim();
    if (!title) return;
    try {
      const board = await sendJson("POST", `/api/v1/rooms/${encodeURIComponent(this.room.id)}/boards/`, { title });
      input.value = "";
      this.boards.set(board.id, board);
      this.render();
      this.open(board.id);
    } catch (error) {
      console.warn("Parley: create board", error);
    }
  }

  /** The board open here is gone: close it and say so. */
  closeGone(board, text = null) {
    this.close();
    this.say(text || `“${board.title}” was deleted.`);
  }

  say(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  open(id) {
    const board = this.boards.get(id);
    if (!board) return;
    this.close();
    this.say("");
    this.follow([board.id]);
    this.split.hidden = false;
    this.layout.classList.add("has-board");
    const container = el("div", { class: "board-split", id: "board" });
    const close = el("button", { type: "button", class: "btn btn-ghost btn-xs board-close", "aria-label": "Close board" }, "Close");
    close.addEventListener("click", () => this.close());
    this.split.replaceChildren(close, container);
    this.app = new BoardApp(container, {
      board: { ...board },
      me: this.me,
      canEdit: this.can("send"),
      canManage: this.can("manage"),
      send: this.send,
    });
    this.app.onGone = (text) => this.app?.board.id === board.id && this.closeGone(board, text);
    window.parleyBoard = this.app;
    this.app.onSocketState(this.socketState, this.transport);
    if (this.ready) this.app.onFrame({ type: "session.ready" });
  }

  close() {
    if (!this.app) return;
    this.app.destroy();
    this.app = null;
    this.follow([]);
    window.parleyBoard = null;
    this.split.replaceChildren();
    this.split.hidden = true;
    this.layout.classList.remove("has-board");
  }

  /** transport: live.js's ("websocket" | "sse" | "poll"). */
  onSocketState(state, transport = "websocket") {
    this.socketState = state;
    this.transport = transport;
    if (state !== "connected") this.ready = false;
    this.app?.onSocketState(state, transport);
  }

  onFrame(frame) {
    if (frame.type === "session.ready") {
      this.ready = true;
      this.load();
    }
    if (frame.type === "board.created" && frame.room === this.room.id) {
      this.boards.set(frame.board.id, frame.board);
      this.render();
    } else if (frame.type === "board.renamed" && frame.room === this.room.id) {
      this.boards.set(frame.board.id, frame.board);
      this.render();
    } else if (frame.type === "board.deleted" && frame.room === this.room.id) {
      this.boards.delete(frame.board.id);
      this.render();
      if (this.app?.board.id === frame.board.id) this.closeGone(this.app.board);
    }
    this.app?.onFrame(frame);
  }
}
