// "… is typing": telling the room that the reader types (TypingNotifier), and showing who else
// does (TypingIndicator).
import { listOfNames } from "./format.js";

const TYPING_MARGIN_MS = 150;
const TYPING_SHOW_MS = 5000; // docs/protocol.md: show "… is typing" for 5 s after the last frame

/**
 * At most one typing frame per `intervalMs` (the server's window; faster ones are dropped).
 * Keystrokes inside that window are not lost: one frame goes out as soon as it ends (a little
 * after, so the server's own window has surely passed), if there is still a draft.
 */
export class TypingNotifier {
  #intervalMs;
  #send;
  #hasDraft;
  #lastSent = 0;
  #timer = null;

  /** intervalMs: from client-config. send(): false if offline. hasDraft(): is there text to send? */
  constructor({ intervalMs, send, hasDraft }) {
    this.#intervalMs = intervalMs;
    this.#send = send;
    this.#hasDraft = hasDraft;
  }

  /** The reader typed. */
  note() {
    if (!this.#hasDraft()) return;
    const wait = this.#lastSent + this.#intervalMs - Date.now();
    if (wait <= 0) this.#sendNow();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#sendNow();
      }, wait + TYPING_MARGIN_MS);
    }
  }

  #sendNow() {
    if (this.#hasDraft() && this.#send()) this.#lastSent = Date.now();
  }
}

export class TypingIndicator {
  #line;
  #text;
  #roomId;
  #me;
  #typers = new Map(); // user id -> {username, timer}

  /** line: the typing line (data-active); text: where the sentence goes. */
  constructor(line, text, { roomId, me }) {
    this.#line = line;
    this.#text = text;
    this.#roomId = roomId;
    this.#me = me;
  }

  /** A typing frame: show its user for a few seconds (nobody is told about their own typing). */
  onTyping(frame) {
    if (frame.room !== this.#roomId || frame.user.id === this.#me.id) return;
    clearTimeout(this.#typers.get(frame.user.id)?.timer);
    const timer = setTimeout(() => this.stop(frame.user.id), TYPING_SHOW_MS);
    this.#typers.set(frame.user.id, { username: frame.user.display_name || frame.user.username, timer });
    this.#render();
  }

  /** They sent their message (or we left): they are not typing any more. */
  stop(userId) {
    const typer = this.#typers.get(userId);
    if (!typer) return;
    clearTimeout(typer.timer);
    this.#typers.delete(userId);
    this.#render();
  }

  clear() {
    for (const userId of [...this.#typers.keys()]) this.stop(userId);
  }

  #render() {
    const names = [...this.#typers.values()].map((typer) => typer.username);
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length > 1 && names.length <= 3) text = `${listOfNames(names)} are typing…`;
    else if (names.length > 3) text = "Several people are typing…";
    this.#line.dataset.active = String(names.length > 0);
    this.#text.textContent = text;
  }
}
