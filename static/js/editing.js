// Editing and deleting messages: the inline editor, the delete dialog, and the message.edit /
// message.delete frames sent but not yet seen applied (resent after a reconnect; repeating one is
// harmless). The server's own message.edit / message.delete redraws the row for real.
import { autosize, el } from "./dom.js";
import { charCount, normalise, truncate } from "./format.js";

const EDITOR_MAX_PX = 320;
const PREVIEW_CHARS = 280;
const OFFLINE = "You're offline. Try again once Parley has reconnected.";

export class Editing {
  #timeline;
  #rows;
  #dialog;
  #preview;
  #roomId;
  #send;
  #maxLength;
  #afterRedraw;
  #focusComposer;
  #editing = null; // {id, input, error} while a message is being edited inline
  #deleting = null; // message id the delete dialog asks about
  #inflight = new Map(); // message id -> message.edit/message.delete frame sent, not yet seen applied

  /**
   * timeline: the Timeline (for the current copy of a message); rows: its MessageRows.
   * dialog/preview: the delete confirmation <dialog> and the quote in it.
   * send(frame): false if offline. maxLength: the server's limit (client-config).
   * afterRedraw(): a row was drawn again (its receipt line needs redrawing).
   * focusComposer(): put the caret back in the composer.
   */
  constructor({ timeline, rows, dialog, preview, roomId, send, maxLength, afterRedraw, focusComposer }) {
    this.#timeline = timeline;
    this.#rows = rows;
    this.#dialog = dialog;
    this.#preview = preview;
    this.#roomId = roomId;
    this.#send = send;
    this.#maxLength = maxLength;
    this.#afterRedraw = afterRedraw;
    this.#focusComposer = focusComposer;
    dialog.addEventListener("close", () => this.#onDialogClosed());
  }

  /** The id of the message open in the editor, or null. */
  get editingId() {
    return this.#editing?.id ?? null;
  }

  // The editor --------------------------------------------------------------------------------

  start(id) {
    const message = this.#timeline.message(id);
    const node = this.#rows.node(id);
    if (!message || !node) return;
    if (this.#editing) this.stop();
    const input = el("textarea", { class: "msg-edit-input", rows: 1, "aria-label": "Edit message" });
    input.value = message.content;
    const error = el("p", { class: "msg-edit-error", role: "alert", hidden: true });
    const cancel = el("button", { type: "button", class: "btn btn-ghost btn-xs" }, "Cancel");
    const save = el("button", { type: "button", class: "btn btn-primary btn-xs" }, "Save");
    const editor = el(
      "div",
      { class: "msg-editor" },
      input,
      el(
        "div",
        { class: "msg-edit-bar" },
        el(
          "span",
          { class: "msg-edit-hint" },
          el("kbd", {}, "Enter"),
          " to save · ",
          el("kbd", {}, "Esc"),
          " to cancel",
        ),
        cancel,
        save,
      ),
      error,
    );
    node.querySelector(".msg-body").replaceWith(editor);
    node.classList.add("is-editing");
    this.#editing = { id, input, error };
    input.addEventListener("input", () => autosize(input, EDITOR_MAX_PX));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.stop({ focusComposer: true });
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
        event.preventDefault();
        this.save();
      }
    });
    cancel.addEventListener("click", () => this.stop({ focusComposer: true }));
    save.addEventListener("click", () => this.save());
    autosize(input, EDITOR_MAX_PX);
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  /** Close the editor and draw the message as it is now. */
  stop({ focusComposer = false } = {}) {
    const editing = this.#editing;
    if (!editing) return;
    this.#editing = null;
    const message = this.#timeline.message(editing.id);
    if (message) this.#rows.draw(message);
    this.#afterRedraw();
    if (focusComposer) this.#focusComposer();
  }

  save() {
    const editing = this.#editing;
    const message = editing && this.#timeline.message(editing.id);
    if (!message) return;
    const content = normalise(editing.input.value);
    const fail = (text) => {
      editing.error.textContent = text;
      editing.error.hidden = false;
    };
    if (!content.trim()) return fail("A message needs some text. To remove it, delete it instead.");
    if (charCount(content) > this.#maxLength) {
      return fail(`Messages can be at most ${this.#maxLength.toLocaleString()} characters.`);
    }
    if (content === message.content) return this.stop({ focusComposer: true });
    const frame = { type: "message.edit", room: this.#roomId, id: message.id, content };
    if (!this.#send(frame)) return fail(OFFLINE);
    this.#inflight.set(message.id, frame);
    this.#editing = null;
    // Show the new text at once; the server's message.edit redraws the row for real.
    // Shown as text until the server's copy brings the new text's formatting (html).
    const shown = { ...message, content, html: null, edited_at: message.edited_at || new Date().toISOString() };
    this.#rows.draw(message, shown)?.classList.add("is-saving");
    this.#afterRedraw();
    this.#focusComposer();
  }

  // Deleting ----------------------------------------------------------------------------------

  askToDelete(id) {
    const message = this.#timeline.message(id);
    if (!message) return;
    this.#deleting = id;
    this.#preview.textContent = truncate(message.content, PREVIEW_CHARS);
    this.#dialog.returnValue = "";
    this.#dialog.showModal();
  }

  #onDialogClosed() {
    const id = this.#deleting;
    this.#deleting = null;
    this.#preview.textContent = ""; // the text is gone for everyone: don't keep a copy around
    const message = id && this.#timeline.message(id);
    if (this.#dialog.returnValue !== "delete" || !message || message.deleted) return;
    const frame = { type: "message.delete", room: this.#roomId, id };
    if (!this.#send(frame)) {
      this.#rows.showError(id, OFFLINE);
      return;
    }
    this.#inflight.set(id, frame);
    this.#rows.node(id)?.classList.add("is-saving");
  }

  // What the server says ----------------------------------------------------------------------

  /**
   * A newer copy of a message arrived: our edit or deletion (or a later one) has landed. Returns
   * whether the row should be drawn again (not while its editor is open, unless it was deleted).
   */
  landed(message) {
    this.#inflight.delete(message.id);
    if (this.#editing?.id !== message.id) return true;
    if (!message.deleted) return false; // keep the editor; closing it draws the latest text
    this.#editing = null;
    return true;
  }

  /**
   * message.edit.ack / message.delete.ack: the server applied our frame, and `message` is the
   * copy it left (already upserted). A change that changed nothing announces nothing to the room,
   * so this is the only word that it landed: show the message as it is.
   */
  acknowledged(message) {
    if (!this.#inflight.delete(message.id)) return;
    const current = this.#timeline.message(message.id);
    if (!current || this.#editing?.id === message.id) return;
    this.#rows.draw(current);
    this.#afterRedraw();
  }

  /** An error frame about `ref`: if it refuses an edit or deletion of ours, say so in its row. */
  refused(ref, text) {
    const frame = ref && this.#inflight.get(ref);
    const message = frame && this.#timeline.message(ref);
    if (!message) return false;
    this.#inflight.delete(ref);
    // Show the message as it really is, and say why.
    this.#rows.draw(message);
    this.#afterRedraw();
    this.#rows.showError(ref, `Couldn't ${frame.type === "message.edit" ? "edit" : "delete"} this message: ${text}`);
    return true;
  }

  /** After reconnecting: edits and deletions we never saw applied go again. */
  resend() {
    for (const frame of this.#inflight.values()) this.#send(frame);
  }

  /** We are out of the room: nothing in flight can land, and nothing may be edited. */
  reset() {
    this.#inflight.clear();
    this.stop();
    if (this.#dialog.open) this.#dialog.close();
  }
}
