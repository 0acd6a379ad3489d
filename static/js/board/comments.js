// Comments on a board (REST: GET/POST /api/v1/boards/{id}/comments/, PATCH/DELETE
// .../comments/{cid}/; live: board.comment frames). Threads are one level: a comment and its
// replies. Authors edit their own comments' text in place (PATCH body). A thread is anchored on an element (a numbered badge on it) or on a point (a pin).
// Resolved threads stay listed, greyed, and leave the badges.
import { displayName, el } from "../dom.js";
import { getJson, sendJson } from "../api.js";

const listOf = (data) => (Array.isArray(data) ? data : data?.results || data?.comments || []);
const isDeleted = (comment) => Boolean(comment.deleted || comment.deleted_at);

export class Comments {
  constructor(panel, { board, me, canComment, canManage, app }) {
    this.panel = panel;
    this.board = board;
    this.me = me;
    this.canComment = canComment;
    this.canManage = canManage;
    this.app = app;
    this.comments = new Map(); // id -> comment
    this.focusElement = null;
    this.editing = null; // {id, draft}: one's own comment being edited (kept across re-renders)
    this.#build();
  }

  url(suffix = "") {
    return `/api/v1/boards/${encodeURIComponent(this.board)}/comments/${suffix}`;
  }

  #build() {
    this.list = el("ol", { class: "comment-threads", "data-comment-list": true });
    this.anchorNote = el("p", { class: "muted small", "data-comment-anchor": true });
    this.input = el("textarea", { class: "input", rows: 2, placeholder: "Add a comment…", "aria-label": "New comment", maxLength: 4000 });
    this.form = el(
      "form",
      { class: "comment-new stack", hidden: !this.canComment },
      this.anchorNote,
      this.input,
      el("button", { type: "submit", class: "btn btn-primary btn-sm" }, "Comment"),
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#create();
    });
    this.panel.replaceChildren(el("h3", { class: "panel-title" }, "Comments"), this.form, this.list);
    this.panel.addEventListener("click", (event) => this.#onClick(event));
    this.panel.addEventListener("submit", (event) => {
      const edit = event.target.closest("[data-edit-comment]");
      if (edit) {
        event.preventDefault();
        this.#saveEdit(edit);
        return;
      }
      const form = event.target.closest("[data-reply-to]");
      if (!form) return;
      event.preventDefault();
      this.#reply(form);
    });
    this.panel.addEventListener("input", (event) => {
      const box = event.target.closest("[data-edit-comment] textarea");
      if (box && this.editing) this.editing.draft = box.value;
    });
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && event.target.closest("[data-edit-comment]")) {
        event.preventDefault();
        this.#cancelEdit();
      }
    });
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    if (open) {
      this.#paintAnchor();
      this.input.focus();
    }
    return open;
  }

  /** Open the panel on the threads of one element. */
  openFor(elementId) {
    this.focusElement = elementId;
    this.toggle(true);
    this.app.container.querySelector('[data-action="comments"]')?.setAttribute("aria-pressed", "true");
    this.render();
  }

  async load() {
    try {
      const data = await getJson(this.url());
      this.comments = new Map(listOf(data).map((comment) => [comment.id, comment]));
      this.render();
      this.paintBadges();
    } catch (error) {
      console.warn("Parley: comments", error);
    }
  }

  /** A comment from board.comment or a REST answer: insert or replace it. */
  upsert(comment) {
    if (!comment?.id) return;
    const known = this.comments.get(comment.id);
    if (known && known.updated_at && comment.updated_at && known.updated_at > comment.updated_at) return;
    this.comments.set(comment.id, comment);
    this.render();
    this.paintBadges();
  }

  #anchor() {
    const selection = this.app.selection;
    if (selection.length === 1) return { element_id: selection[0] };
    const view = this.app.view.view;
    const rect = this.app.ui.stage.getBoundingClientRect();
    return { x: Math.round(view.x + rect.width / 2 / view.zoom), y: Math.round(view.y + rect.height / 2 / view.zoom) };
  }

  #paintAnchor() {
    const anchor = this.#anchor();
    this.anchorNote.textContent = anchor.element_id ? "On the selected element" : "On the middle of the view (select an element to comment on it)";
  }

  async #create() {
    const body = this.input.value.trim();
    if (!body) return;
    try {
      const comment = await sendJson("POST", this.url(), { body, ...this.#anchor() });
      this.input.value = "";
      this.upsert(comment.comment || comment);
    } catch (error) {
      this.anchorNote.textContent = error.message || "Could not comment.";
    }
  }

  async #reply(form) {
    const box = form.querySelector("textarea");
    const body = box.value.trim();
    if (!body) return;
    try {
      const comment = await sendJson("POST", this.url(), { body, parent: form.dataset.replyTo });
      box.value = "";
      this.upsert(comment.comment || comment);
    } catch (error) {
      console.warn("Parley: reply", error);
    }
  }

  async #onClick(event) {
    const button = event.target.closest("button[data-comment-action]");
    if (!button) return;
    const id = button.dataset.commentId;
    const comment = this.comments.get(id);
    if (!comment) return;
    try {
      if (button.dataset.commentAction === "resolve") {
        this.upsert(await sendJson("PATCH", this.url(`${encodeURIComponent(id)}/`), { resolved: !comment.resolved }));
      } else if (button.dataset.commentAction === "delete") {
        const response = await fetch(this.url(`${encodeURIComponent(id)}/`), {
          method: "DELETE",
          credentials: "same-origin",
          headers: { "X-CSRFToken": (document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/) || [])[1] || "" },
        });
        if (response.ok && response.status !== 204) this.upsert(await response.json());
        else if (response.ok) this.upsert({ ...comment, deleted: true, body: "" });
      } else if (button.dataset.commentAction === "show" && comment.element_id) {
        this.app.setSelection([comment.element_id]);
      } else if (button.dataset.commentAction === "edit") {
        this.editing = { id, draft: comment.body || "", error: "" };
        this.render();
        const box = this.list.querySelector(`[data-edit-comment="${CSS.escape(id)}"] textarea`);
        box?.focus();
        box?.select();
      } else if (button.dataset.commentAction === "cancel-edit") {
        this.#cancelEdit();
      }
    } catch (error) {
      console.warn("Parley: comment", error);
    }
  }

  #cancelEdit() {
    this.editing = null;
    this.render();
  }

  /** Save an edited comment (PATCH body: the author only; the server says so otherwise). */
  async #saveEdit(form) {
    const id = form.dataset.editComment;
    const body = form.querySelector("textarea").value.trim();
    if (!body || !this.editing || this.editing.id !== id) return;
    const comment = this.comments.get(id);
    if (comment && body === comment.body) {
      this.#cancelEdit();
      return;
    }
    try {
      const saved = await sendJson("PATCH", this.url(`${encodeURIComponent(id)}/`), { body });
      this.editing = null;
      this.upsert(saved.comment || saved);
      this.render();
    } catch (error) {
      this.editing = { id, draft: body, error: error.message || "Could not save the comment." };
      this.render();
    }
  }

  #editForm(comment) {
    const box = el("textarea", { class: "input", rows: 2, "aria-label": "Edit comment", maxLength: 4000 });
    box.value = this.editing.draft;
    return el(
      "form",
      { class: "comment-edit", "data-edit-comment": comment.id },
      box,
      this.editing.error ? el("p", { class: "field-error small", role: "alert" }, this.editing.error) : null,
      el(
        "div",
        { class: "comment-actions" },
        el("button", { type: "submit", class: "btn btn-primary btn-xs" }, "Save"),
        el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-comment-action": "cancel-edit", "data-comment-id": comment.id }, "Cancel"),
      ),
    );
  }

  threads() {
    const all = [...this.comments.values()];
    const tops = all.filter((comment) => !comment.parent).sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    return tops.map((top) => ({
      top,
      replies: all.filter((comment) => comment.parent === top.id).sort((a, b) => String(a.created_at).localeCompare(String(b.created_at))),
    }));
  }

  #commentNode(comment, { top }) {
    const author = displayName(comment.author) || "someone"; // the display name, else the username
    const mine = comment.author?.id === this.me.id;
    const deleted = isDeleted(comment);
    const actions = el("div", { class: "comment-actions" });
    if (top && this.canComment && !deleted) {
      actions.append(el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-comment-action": "resolve", "data-comment-id": comment.id }, comment.resolved ? "Reopen" : "Resolve"));
    }
    if (top && comment.element_id) {
      actions.append(el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-comment-action": "show", "data-comment-id": comment.id }, "Show"));
    }
    if (!deleted && mine && this.canComment) {
      actions.append(el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-comment-action": "edit", "data-comment-id": comment.id }, "Edit"));
    }
    if (!deleted && (mine || this.canManage)) {
      actions.append(el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-comment-action": "delete", "data-comment-id": comment.id }, "Delete"));
    }
    const editing = !deleted && mine && this.editing?.id === comment.id;
    return el(
      "div",
      { class: "comment", "data-comment-id": comment.id },
      el("div", { class: "comment-meta" }, el("strong", {}, author), " ", el("time", { class: "muted small" }, String(comment.created_at || "").slice(11, 16))),
      editing ? this.#editForm(comment) : el("div", { class: deleted ? "comment-body muted" : "comment-body" }, deleted ? "(deleted)" : comment.body),
      editing ? null : actions,
    );
  }

  render() {
    const rows = [];
    for (const { top, replies } of this.threads()) {
      const item = el("li", {
        class: `comment-thread${top.resolved ? " is-resolved" : ""}${this.focusElement && top.element_id === this.focusElement ? " is-focused" : ""}`,
        "data-thread": top.id,
        "data-element": top.element_id || "",
      });
      item.append(this.#commentNode(top, { top: true }));
      const replyList = el("div", { class: "comment-replies" });
      for (const reply of replies) replyList.append(this.#commentNode(reply, { top: false }));
      item.append(replyList);
      if (this.canComment && !isDeleted(top)) {
        item.append(
          el(
            "form",
            { class: "comment-reply", "data-reply-to": top.id },
            el("textarea", { class: "input", rows: 1, placeholder: "Reply…", "aria-label": "Reply", maxLength: 4000 }),
            el("button", { type: "submit", class: "btn btn-secondary btn-xs" }, "Reply"),
          ),
        );
      }
      rows.push(item);
    }
    this.list.replaceChildren(...rows);
  }

  /** Badges: open (unresolved, not deleted) threads per element, and pins for point threads. */
  paintBadges() {
    if (this.app.replaying) return;
    const counts = new Map();
    const pins = [];
    for (const { top, replies } of this.threads()) {
      if (top.resolved || isDeleted(top)) continue;
      const count = 1 + replies.filter((reply) => !isDeleted(reply)).length;
      if (top.element_id) counts.set(top.element_id, (counts.get(top.element_id) || 0) + count);
      else if (Number.isFinite(top.x) && Number.isFinite(top.y)) pins.push({ id: top.id, x: top.x, y: top.y, count });
    }
    this.app.view.renderBadges(counts, pins);
  }
}
