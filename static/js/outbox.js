// Messages the reader sent that the server has not confirmed yet: optimistic grey rows below the
// confirmed ones, keyed by client_msg_id, resent after reconnects (same id, so the server
// dedupes), and failed ones offered for retry or discard.
import { avatar, displayName, el } from "./dom.js";

/** crypto.randomUUID exists only in secure contexts (https, localhost); plain-http hosts need the fallback. */
export function newClientMsgId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const STATUS_TEXT = {
  // Not sent, or sent on a connection that died before the server answered: it goes (again,
  // with the same client_msg_id) as soon as the page is connected.
  queued: "Not sent yet — retrying",
  sent: "Sending…",
  // The server asked us to wait a moment (rate_limited, unavailable): resent by itself.
  waiting: "Sending in a moment…",
  failed: "Not sent",
};
const OFFLINE_TEXT = "Not sent yet — offline";
// Answers that mean "not now" rather than "no": the message goes again after retry_after_ms.
const RETRY_LATER = new Set(["rate_limited", "unavailable"]);

export class Outbox {
  #list;
  #roomId;
  #me;
  #send;
  #seal;
  #pending = new Map(); // client_msg_id -> {id, content, status, error, code, node, replyTo}
  // The thread new messages reply in (the thread panel's outbox, threads.js), or null.
  replyTo = null;
  #offline = false;

  /** list: the <ol> of pending rows. send(frame): false if the socket is not ready. seal(text):
   * in an end-to-end encrypted room, a Promise of the envelope to send instead of the text (e2ee.js),
   * or null (send the text); omitted: always the text. */
  constructor(list, { roomId, me, send, seal = null }) {
    this.#list = list;
    this.#roomId = roomId;
    this.#me = me;
    this.#send = send;
    this.#seal = seal;
  }

  get size() {
    return this.#pending.size;
  }

  /** Send a new message (a pending row until the server has it), with `attachments` (ids of completed uploads). */
  queue(content, attachments = []) {
    const entry = { id: newClientMsgId(), content, status: "queued", error: "", code: "", node: null, replyTo: this.replyTo };
    if (attachments.length) entry.attachments = attachments;
    entry.node = this.#render(entry);
    this.#pending.set(entry.id, entry);
    this.#list.append(entry.node);
    this.#transmit(entry);
  }

  /** After (re)connecting: send everything not yet acknowledged. */
  flush() {
    for (const entry of this.#pending.values()) if (entry.status !== "failed") this.#transmit(entry);
  }

  /** The connection is down (`offline`: the browser says the network is gone): nothing sent
   * and unanswered will be answered on it, so say so, rather than "Sending…" forever. */
  disconnected(offline = false) {
    this.#offline = offline;
    for (const entry of this.#pending.values()) {
      if (entry.status === "sent") entry.status = "queued";
      if (entry.status === "queued") this.#paint(entry);
    }
  }

  /** A copy of a message arrived: if it is one of ours still pending, its grey row goes. */
  settle(message) {
    if (message.sender?.id === this.#me.id) this.#drop(message.client_msg_id);
  }

  /** message.ack: the server stored the message sent as `clientMsgId`. */
  acknowledged(clientMsgId) {
    this.#drop(clientMsgId);
  }

  /** An error frame about `ref`: if it names a pending message, it failed, or, when the server
   * only asked to wait (`retryAfterMs`), it goes again by itself then. Returns whether it named one. */
  fail(ref, text, code, retryAfterMs) {
    const entry = ref ? this.#pending.get(ref) : null;
    if (!entry) return false;
    if (RETRY_LATER.has(code) && retryAfterMs > 0) {
      entry.status = "waiting";
      this.#paint(entry);
      setTimeout(() => {
        if (this.#pending.get(entry.id) === entry && entry.status === "waiting") this.#transmit(entry);
      }, retryAfterMs);
      return true;
    }
    this.#fail(entry, text, code);
    return true;
  }

  /** Nothing pending can succeed any more (we left the room). */
  failAll(text, code) {
    for (const entry of this.#pending.values()) if (entry.status !== "failed") this.#fail(entry, text, code);
  }

  #transmit(entry) {
    // Sealed once: every resend carries the same envelope under the same client_msg_id.
    if (this.#seal && entry.envelope === undefined) {
      if (entry.sealing) return;
      entry.sealing = Promise.resolve(this.#seal(entry.content)).then(
        (envelope) => {
          entry.sealing = null;
          entry.envelope = envelope;
          if (this.#pending.get(entry.id) === entry && entry.status !== "failed") this.#transmit(entry);
        },
        (error) => {
          entry.sealing = null;
          this.#fail(entry, `Couldn't encrypt the message: ${error.message}`, "e2ee");
        },
      );
      return;
    }
    const content = entry.envelope ?? entry.content;
    const frame = { type: "message.send", room: this.#roomId, content, client_msg_id: entry.id };
    if (entry.replyTo) frame.reply_to = entry.replyTo;
    if (entry.attachments) frame.attachments = entry.attachments;
    entry.status = this.#send(frame) ? "sent" : "queued";
    if (entry.status === "sent") this.#offline = false;
    this.#paint(entry);
  }

  #fail(entry, text, code) {
    entry.status = "failed";
    entry.error = text || "The message could not be sent.";
    entry.code = code || "";
    this.#paint(entry);
  }

  #retry(entry) {
    if (entry.code === "client_msg_id_reused") {
      // That id belongs to another room's message: only a fresh one can succeed.
      this.#pending.delete(entry.id);
      entry.id = newClientMsgId();
      entry.node.dataset.clientMsgId = entry.id;
      this.#pending.set(entry.id, entry);
    }
    // Sealed again if the room's encryption changed or sealing failed (a new device list, too).
    if (entry.code === "encrypted_room" || entry.code === "not_encrypted" || entry.code === "e2ee") {
      entry.envelope = undefined;
    }
    entry.error = "";
    entry.code = "";
    this.#transmit(entry);
  }

  #drop(clientMsgId) {
    const entry = this.#pending.get(clientMsgId);
    if (!entry) return;
    this.#pending.delete(clientMsgId);
    entry.node.remove();
  }

  #render(entry) {
    const me = this.#me;
    return el(
      "li",
      { class: "msg msg-mine msg-pending", "data-client-msg-id": entry.id, "data-reply-to": entry.replyTo },
      avatar(me),
      el(
        "div",
        { class: "msg-main" },
        el(
          "div",
          { class: "msg-meta" },
          el("span", { class: "msg-author" }, displayName(me)),
          el("span", { class: "msg-status" }),
        ),
        el("div", { class: "msg-body" }, entry.content || (entry.attachments && `📎 ${entry.attachments.length} file(s)`)),
        el("div", { class: "msg-failure", hidden: true }),
      ),
    );
  }

  #paint(entry) {
    const node = entry.node;
    const failed = entry.status === "failed";
    node.classList.toggle("is-failed", failed);
    const status = entry.status === "queued" && this.#offline ? OFFLINE_TEXT : STATUS_TEXT[entry.status];
    node.querySelector(".msg-status").textContent = status;
    node.dataset.status = entry.status;
    const failure = node.querySelector(".msg-failure");
    failure.hidden = !failed;
    if (!failed) return;
    const retry = el("button", { type: "button", class: "btn btn-secondary btn-xs" }, "Retry");
    const discard = el("button", { type: "button", class: "btn btn-ghost btn-xs" }, "Discard");
    retry.addEventListener("click", () => this.#retry(entry));
    discard.addEventListener("click", () => this.#drop(entry.id));
    failure.replaceChildren(el("span", { class: "msg-failure-text" }, entry.error), retry, discard);
  }
}
