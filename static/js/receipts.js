// Outgoing receipts (docs/protocol.md: `receipt` frames, at most one flush every 2 s).
//
// Pages tell the batcher how far they have got in a room (`note`); it sends only marks that moved
// forward since the last frame, and keeps what could not be sent (socket down) for the next flush
// after reconnecting. The server only ever moves marks forward, so resending is harmless.

const FLUSH_EVERY_MS = 2000;

export class ReceiptSender {
  constructor(socket) {
    this.socket = socket;
    this.rooms = new Map(); // room id -> {delivered, read, sentDelivered, sentRead}
    this.lastFlush = 0;
    this.timer = null;
  }

  /** Record progress in a room: `delivered` (received up to) and/or `read` (seen up to). */
  note(roomId, { delivered = 0, read = 0 } = {}) {
    const marks = this.rooms.get(roomId) || { delivered: 0, read: 0, sentDelivered: 0, sentRead: 0 };
    marks.read = Math.max(marks.read, read || 0);
    marks.delivered = Math.max(marks.delivered, delivered || 0, marks.read); // read implies received
    this.rooms.set(roomId, marks);
    if (marks.delivered > marks.sentDelivered || marks.read > marks.sentRead) this.schedule();
  }

  /** Forget a room we left: the server would refuse its receipts. */
  forget(roomId) {
    this.rooms.delete(roomId);
  }

  /** Forget every room not in `roomIds` (an object keyed by room id, like session.ready's rooms). */
  retain(roomIds) {
    for (const roomId of [...this.rooms.keys()]) if (!(roomId in roomIds)) this.rooms.delete(roomId);
  }

  schedule() {
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastFlush + FLUSH_EVERY_MS - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    this.timer = null;
    let sent = false;
    let unsent = false;
    for (const [room, marks] of this.rooms) {
      const frame = { type: "receipt", room };
      if (marks.delivered > marks.sentDelivered) frame.delivered_sequence = marks.delivered;
      if (marks.read > marks.sentRead) frame.read_sequence = marks.read;
      if (!("delivered_sequence" in frame) && !("read_sequence" in frame)) continue;
      if (this.socket.send(frame)) {
        marks.sentDelivered = Math.max(marks.sentDelivered, marks.delivered);
        marks.sentRead = Math.max(marks.sentRead, marks.read);
        sent = true;
      } else {
        unsent = true; // offline: flushed again once the socket is ready (see onReady)
      }
    }
    if (sent) this.lastFlush = Date.now();
    return !unsent;
  }

  /** After (re)connecting: send whatever is still owed. */
  onReady() {
    for (const marks of this.rooms.values()) {
      if (marks.delivered > marks.sentDelivered || marks.read > marks.sentRead) {
        this.schedule();
        return;
      }
    }
  }
}
