// Threads (docs/protocol.md "Threads and reactions"): the line under a message that has replies,
// and the thread panel, which shows one thread live next to the chat.
//
// A reply is an ordinary message of the room whose `reply_to` names its thread's root, so the
// panel needs no feed of its own: it reads the thread once over REST (GET …/thread/, paged), then
// sees every copy of every message that reaches the page (chat.js hands it the timeline's copies:
// live events, sync batches, acks, REST pages) and keeps those of its thread, newest copy wins
// (timeline.js isNewer). Replies are written through an Outbox of their own (outbox.js, with
// `replyTo`), so they are resent after reconnects like any message. Files go with a reply as with
// any message: the page hands the panel an AttachmentTray (attachments.js) bound to its composer.
import { MessageRows } from "./message-view.js";
import { isNewer } from "./timeline.js";

const PAGE_SIZE = 50;

export class ThreadPanel {
  #panel;
  #rootList;
  #list;
  #more;
  #status;
  #composer;
  #input;
  #fetchThread;
  #outbox;
  #attachments;
  #onOpen;
  #rowOptions;
  #rootRows;
  #rows;
  #root = null; // the root message shown
  #replies = new Map(); // id -> newest copy
  #order = []; // reply ids by sequence
  #hasMore = false;
  #loading = false;
  #generation = 0; // bumps on each open: answers for a thread closed meanwhile are dropped

  /**
   * panel: the <aside id="thread-panel">. fetchThread(id, params): the REST page. outbox: the
   * replies' Outbox (its replyTo is set here). can(message): what the reader may do with a
   * message ({react, ...}). onAction(id, action, target): a click on a message's action in the
   * panel (reactions). onOpen(rootId | null): the panel opened or closed. attachments: the reply
   * composer's AttachmentTray (attachments.js), or null. nameOf(user), open(message): see message-view.js.
   */
  constructor(
    panel,
    { me, fetchThread, outbox, can, onAction, onOpen = () => {}, nameOf = undefined, attachments = null, open = null },
  ) {
    this.#panel = panel;
    this.#fetchThread = fetchThread;
    this.#outbox = outbox;
    this.#attachments = attachments;
    this.#onOpen = onOpen;
    this.#rootList = panel.querySelector("#thread-root");
    this.#list = panel.querySelector("#thread-replies");
    this.#more = panel.querySelector("#thread-more");
    this.#status = panel.querySelector("#thread-status");
    this.#composer = panel.querySelector("#thread-composer");
    this.#input = panel.querySelector("#thread-input");
    const inPanel = (message) => ({ ...can(message), edit: false, remove: false, receipts: false, reply: false });
    this.#rowOptions = { me, can: inPanel, threadLinks: false, nameOf, open };
    this.#rootRows = new MessageRows(this.#rootList, this.#rowOptions);
    this.#rows = new MessageRows(this.#list, this.#rowOptions);
    panel.querySelector("#thread-close").addEventListener("click", () => this.close());
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.defaultPrevented) this.close();
    });
    this.#more.addEventListener("click", () => this.#loadOlder());
    this.#composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submit();
    });
    this.#input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.#submit();
      }
    });
    panel.addEventListener("click", (event) => {
      for (const rows of [this.#rootRows, this.#rows]) {
        const hit = rows.actionAt(event.target);
        if (hit) onAction(hit.id, hit.action, event.target);
      }
    });
  }

  get rootId() {
    return this.#root ? this.#root.id : null;
  }

  /** The copy of a message the panel shows (its root or a reply), or undefined. */
  message(id) {
    return this.#root?.id === id ? this.#root : this.#replies.get(id);
  }

  /** The row a message of the panel is drawn in (for the reaction picker). */
  node(id) {
    return this.#rootRows.node(id) ?? this.#rows.node(id);
  }

  /** Open the thread `message` belongs to (its root, or a reply of it). */
  async open(message) {
    const rootId = message.reply_to || message.id;
    if (this.rootId === rootId && !this.#panel.hidden) {
      this.#input.focus();
      return;
    }
    const generation = ++this.#generation;
    this.#attachments?.clear(); // files picked for another thread stay unsent
    this.#showError("");
    this.#reset();
    this.#panel.hidden = false;
    this.#outbox.replyTo = rootId;
    this.#showPending(rootId);
    this.#status.textContent = "Loading the thread…";
    if (!message.reply_to) this.#showRoot(message); // at once; the page's copy
    this.#onOpen(rootId);
    this.#input.focus();
    const page = await this.#page({ limit: PAGE_SIZE }, generation);
    if (!page) return;
    this.#showRoot(page.root);
    for (const reply of page.results) this.#upsert(reply);
    this.#hasMore = page.has_more;
    this.#refresh();
  }

  close() {
    if (this.#panel.hidden) return;
    this.#generation += 1;
    this.#reset();
    this.#panel.hidden = true;
    this.#outbox.replyTo = null;
    this.#attachments?.clear(); // not sent: the hourly prune removes the uploads
    this.#showError("");
    this.#onOpen(null);
  }

  /** Any copy of any message that reached the page: keep those of the open thread. */
  onCopy(message) {
    if (!this.#root) return;
    if (message.id === this.#root.id) this.#showRoot(message);
    else if (message.reply_to === this.#root.id) {
      this.#upsert(message);
      this.#refresh();
    }
  }

  /** A user.profile: the open thread's rows that name them are drawn again (message-view.js). */
  onProfile(user) {
    this.#rootRows.onProfile(user, this.#root ? [this.#root] : []);
    this.#rows.onProfile(user, this.#replies.values());
  }

  /** The reader's role changed: redraw what each row offers. */
  refreshActions(canSend) {
    this.#rootRows.refreshActions(this.#root ? [this.#root] : []);
    this.#rows.refreshActions(this.#order.map((id) => this.#replies.get(id)));
    this.setAccess(canSend);
  }

  setAccess(canReply) {
    this.#input.disabled = !canReply;
    this.#composer.querySelector("button[type=submit]").disabled = !canReply;
    const attach = this.#composer.querySelector("#thread-attach-button");
    if (attach) attach.disabled = !canReply;
    this.#input.placeholder = canReply ? "Reply…" : "You can read this thread but not reply.";
  }

  /** Replies still being sent show under their own thread only. */
  #showPending(rootId) {
    for (const node of this.#panel.querySelector("#thread-pending").children) {
      node.hidden = node.dataset.replyTo !== rootId;
    }
  }

  #submit() {
    const content = this.#input.value;
    if (!this.#root || this.#input.disabled) return;
    if (this.#attachments?.busy()) return this.#showError("Wait for the uploads to finish, then reply.");
    const files = this.#attachments?.ids() ?? [];
    if (!content.trim() && !files.length) return;
    this.#showError("");
    this.#outbox.queue(content, files);
    this.#attachments?.clear();
    this.#input.value = "";
  }

  #showError(text) {
    const error = this.#composer.querySelector("#thread-error");
    if (!error) return;
    error.textContent = text;
    error.hidden = !text;
  }

  #reset() {
    this.#root = null;
    this.#replies.clear();
    this.#order = [];
    this.#hasMore = false;
    this.#rootList.replaceChildren();
    this.#list.replaceChildren();
    this.#rootRows = new MessageRows(this.#rootList, this.#rowOptions);
    this.#rows = new MessageRows(this.#list, this.#rowOptions);
    this.#refresh();
  }

  async #page(params, generation) {
    this.#loading = true;
    try {
      const page = await this.#fetchThread(this.#root?.id || this.#outbox.replyTo, params);
      return generation === this.#generation ? page : null;
    } catch (error) {
      if (generation === this.#generation) this.#status.textContent = "Couldn't load this thread.";
      console.warn("Parley:", error);
      return null;
    } finally {
      this.#loading = false;
    }
  }

  async #loadOlder() {
    if (this.#loading || !this.#hasMore || !this.#order.length) return;
    const lowest = this.#replies.get(this.#order[0]).sequence;
    const page = await this.#page({ limit: PAGE_SIZE, before_sequence: lowest }, this.#generation);
    if (!page) return;
    for (const reply of page.results) this.#upsert(reply);
    this.#hasMore = page.has_more;
    this.#refresh();
  }

  #showRoot(message) {
    if (this.#root && this.#root.id === message.id) {
      if (!isNewer(message, this.#root)) return;
      this.#root = message;
      this.#rootRows.draw(message);
    } else {
      this.#root = message;
      this.#rootList.replaceChildren();
      this.#rootRows = new MessageRows(this.#rootList, this.#rowOptions);
      this.#rootRows.insert(message, null);
    }
    this.#refresh();
  }

  #upsert(message) {
    const known = this.#replies.get(message.id);
    if (known) {
      if (!isNewer(message, known)) return;
      this.#replies.set(message.id, message);
      this.#rows.draw(message);
      return;
    }
    this.#replies.set(message.id, message);
    let index = this.#order.length;
    while (index > 0 && this.#replies.get(this.#order[index - 1]).sequence > message.sequence) index -= 1;
    const next = index < this.#order.length ? this.#replies.get(this.#order[index]) : null;
    this.#order.splice(index, 0, message.id);
    this.#rows.insert(message, next);
  }

  #refresh() {
    this.#more.hidden = !this.#hasMore;
    if (!this.#root) return; // "Loading the thread…" or the load's error stays
    const count = this.#root.reply_count;
    this.#status.textContent = count === 1 ? "1 reply" : `${count} replies`;
  }
}
