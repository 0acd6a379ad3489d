// The composer at the bottom of the room: Enter sends, Shift+Enter is a new line, drafts over the
// server's length limit are refused before sending, and it is disabled for viewers and for
// people no longer in the room.
import { autosize, el } from "./dom.js";
import { charCount, normalise } from "./format.js";

const SEND_HINT = () => [
  el("kbd", {}, "Enter"),
  " to send · ",
  el("kbd", {}, "Shift"),
  "+",
  el("kbd", {}, "Enter"),
  " for a new line",
];

export class Composer {
  #form;
  #input;
  #button;
  #error;
  #hint;
  #maxLength;
  #onSend;
  // The uploads to send with the next message (attachments.js AttachmentTray), or null.
  attachments = null;

  /**
   * form: the composer <form> (holding #composer-input, #send-button, #composer-error and
   * #composer-hint). maxLength: the server's limit (client-config). onSend(content): a draft to
   * send. onInput(): the reader typed. onEditLast(): ArrowUp in the empty composer: open the
   * reader's last message in its editor; true if there was one.
   */
  constructor(form, { maxLength, onSend, onInput = () => {}, onEditLast = () => false }) {
    this.#form = form;
    this.#input = form.querySelector("#composer-input");
    this.#button = form.querySelector("#send-button");
    this.#error = form.querySelector("#composer-error");
    this.#hint = form.querySelector("#composer-hint");
    this.#maxLength = maxLength;
    this.#onSend = onSend;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submit();
    });
    this.#input.addEventListener("keydown", (event) => {
      // Enter sends; Shift+Enter is a newline. isComposing: Enter also confirms IME input (CJK).
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.altKey) return;
      event.preventDefault();
      this.#submit();
    });
    this.#input.addEventListener("keydown", (event) => {
      // ArrowUp in an empty composer edits one's last message, as in Slack, Zulip and Mattermost.
      if (event.key !== "ArrowUp" || this.#input.value || event.isComposing) return;
      if (event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
      if (onEditLast()) event.preventDefault();
    });
    this.#input.addEventListener("input", () => {
      autosize(this.#input);
      this.#validate();
      onInput();
    });
  }

  /** Is there something typed that could be sent? */
  hasDraft() {
    return !this.#input.disabled && Boolean(this.#input.value.trim());
  }

  focus() {
    if (!this.#input.disabled) this.#input.focus();
  }

  /** What the reader may do here: `removed` (not a member any more), their `role`, the room's name. */
  setAccess({ removed, canSend, roomName }) {
    if (removed) {
      this.#setEnabled(false, "You are no longer a member of this room.", ["You can't send messages here any more."]);
    } else if (!canSend) {
      this.#setEnabled(false, "You can read this room but not send messages.", [
        "You're a viewer here: you can read but not send.",
      ]);
    } else {
      this.#setEnabled(true, `Message ${roomName}`, SEND_HINT());
    }
  }

  #setEnabled(enabled, placeholder, hint) {
    this.#input.disabled = !enabled;
    this.#button.disabled = !enabled;
    const attach = this.#form.querySelector("#attach-button"); // attachments.js
    if (attach) attach.disabled = !enabled;
    this.#form.classList.toggle("is-disabled", !enabled);
    this.#input.placeholder = placeholder;
    this.#hint.replaceChildren(...hint);
  }

  #showError(text) {
    this.#error.textContent = text;
    this.#error.hidden = !text;
    this.#input.setAttribute("aria-invalid", text ? "true" : "false");
  }

  #validate() {
    const count = charCount(normalise(this.#input.value));
    const max = this.#maxLength;
    if (count > max) {
      this.#showError(
        `Messages can be at most ${max.toLocaleString()} characters (this one has ${count.toLocaleString()}).`,
      );
      return false;
    }
    this.#showError("");
    return true;
  }

  #submit() {
    if (this.#input.disabled) return;
    const content = normalise(this.#input.value);
    const files = this.attachments?.ids() ?? [];
    if (this.attachments?.busy()) return this.#showError("Wait for the uploads to finish, then send.");
    if (!content.trim() && !files.length) return; // nothing to say: not an error, just nothing to send
    if (!this.#validate()) return;
    this.#onSend(content, files);
    this.attachments?.clear();
    this.#input.value = "";
    autosize(this.#input);
    this.#input.focus();
  }
}
