// Read receipts on the room page, both ways: how far the reader has got (handed to the
// ReceiptSender of receipts.js, which batches the frames), and what the others' marks say about
// the reader's own messages (the "Sent / Delivered / Read by …" line under them).
import { el } from "./dom.js";
import { getJson, HttpError } from "./api.js";

const READERS_NAMED = 3; // "Read by alice, bob, carol"; more than that: "Read by 5"

const pageIsSeen = () => document.visibilityState === "visible" && document.hasFocus();

export class ReceiptsView {
  #roomId;
  #me;
  #timeline;
  #rows;
  #sender;
  #readUpTo;
  #editingId;
  #receiptsUrl;
  #active = true;
  #marks = new Map(); // user id -> {username, delivered, read (null: they hide it)}: lower bounds
  #open = new Set(); // older own messages whose status the reader asked to see
  #lines = new Set(); // message ids currently showing a status line

  /**
   * timeline/rows: the room's Timeline and MessageRows. sender: the page's ReceiptSender.
   * readUpTo(): the highest message sequence the reader can see right now.
   * editingId(): the message open in the editor (it shows no status line meanwhile).
   * receiptsUrl(id): GET …/messages/<id>/receipts/.
   */
  constructor({ roomId, me, timeline, rows, sender, readUpTo, editingId, receiptsUrl }) {
    this.#roomId = roomId;
    this.#me = me;
    this.#timeline = timeline;
    this.#rows = rows;
    this.#sender = sender;
    this.#readUpTo = readUpTo;
    this.#editingId = editingId;
    this.#receiptsUrl = receiptsUrl;
  }

  /** Stop (we left the room: the server would refuse our receipts) or start again (re-added). */
  setActive(active) {
    this.#active = active;
    if (!active) this.#sender.forget(this.#roomId);
  }

  // What I tell the server --------------------------------------------------------------------

  /** How far we have got: received everything applied, read what is on screen (if it is seen). */
  noteProgress() {
    if (!this.#active) return;
    const delivered = Math.max(this.#timeline.lastChange, this.#timeline.highest);
    this.#sender.note(this.#roomId, { delivered, read: pageIsSeen() ? this.#readUpTo() : 0 });
  }

  // What the others' marks say ---------------------------------------------------------------

  onReceipt(frame) {
    if (frame.room !== this.#roomId || frame.user.id === this.#me.id) return;
    const mark = this.#markOf(frame.user.id, frame.user.display_name || frame.user.username);
    mark.delivered = Math.max(mark.delivered, frame.delivered_sequence || 0);
    mark.read = frame.read_sequence === null ? null : Math.max(mark.read || 0, frame.read_sequence || 0);
    this.refresh();
  }

  /** Receipt frames sent while we were away are lost: read my latest message's status afresh. */
  reload() {
    const latest = this.#latestOwn();
    if (latest) this.#fetch(latest);
  }

  /** Show or hide the status line of one of my (older) messages. */
  toggle(id) {
    if (this.#open.has(id)) {
      this.#open.delete(id);
      this.refresh();
      return;
    }
    this.#open.add(id);
    this.refresh();
    const message = this.#timeline.message(id);
    if (message) this.#fetch(message);
  }

  /** Status lines: always under my latest message, and under older ones the reader asked about. */
  refresh() {
    const wanted = new Set([...this.#open].filter((id) => this.#timeline.has(id)));
    const latest = this.#latestOwn();
    if (latest) wanted.add(latest.id);
    for (const id of this.#lines) {
      if (!wanted.has(id)) this.#rows.node(id)?.querySelector(".msg-receipt")?.remove();
    }
    this.#lines.clear();
    for (const id of wanted) {
      const message = this.#timeline.message(id);
      const node = this.#rows.node(id);
      if (!node || message.deleted || this.#editingId() === id) continue;
      const status = this.#status(message);
      let line = node.querySelector(".msg-receipt");
      if (!line) {
        line = el("div", { class: "msg-receipt", "data-testid": "receipt" });
        node.querySelector(".msg-main").append(line);
      }
      line.dataset.state = status.state;
      if (line.textContent !== status.text) line.textContent = status.text;
      this.#lines.add(id);
    }
  }

  #latestOwn() {
    return this.#timeline.newest((message) => this.#rows.isMine(message) && !message.deleted);
  }

  #markOf(userId, username) {
    let mark = this.#marks.get(userId);
    if (!mark) {
      mark = { username, delivered: 0, read: 0 };
      this.#marks.set(userId, mark);
    }
    if (username) mark.username = username;
    return mark;
  }

  /** Who has one of my messages and who read it, as lower bounds on their marks. */
  async #fetch(message) {
    try {
      const data = await getJson(this.#receiptsUrl(message.id));
      for (const user of data.delivered_to) {
        const mark = this.#markOf(user.id, user.display_name || user.username);
        mark.delivered = Math.max(mark.delivered, data.sequence);
      }
      for (const user of data.read_by) {
        const mark = this.#markOf(user.id, user.display_name || user.username);
        if (mark.read !== null) mark.read = Math.max(mark.read, data.sequence);
        mark.delivered = Math.max(mark.delivered, data.sequence);
      }
    } catch (error) {
      if (!(error instanceof HttpError && error.status === 404)) console.warn("Parley: receipts", error);
    }
    this.refresh();
  }

  #status(message) {
    const readers = [];
    let delivered = false;
    for (const [userId, mark] of this.#marks) {
      if (userId === this.#me.id) continue;
      if (mark.read !== null && mark.read >= message.sequence) readers.push(mark.username);
      if (mark.delivered >= message.sequence) delivered = true;
    }
    if (readers.length) {
      readers.sort((a, b) => a.localeCompare(b));
      const who = readers.length > READERS_NAMED ? String(readers.length) : readers.join(", ");
      return { state: "read", text: `Read by ${who}` };
    }
    return delivered ? { state: "delivered", text: "Delivered" } : { state: "sent", text: "Sent" };
  }
}
