// Unread badges on room lists: the room page's sidebar and the home page's "Your rooms".
//
// Counts start from session.ready's `unread`, go up with every message.new from someone else in a
// room that is not open on this page, and go back to zero when one of *my* receipt frames (my
// other tabs and devices get my real marks) says I have read up to the room's latest number.
// Whenever the live arithmetic can't be sure (a deletion, a read mark short of the end), the
// exact counts are re-read from GET /api/v1/rooms/.
import { el } from "./dom.js";
import { getJson } from "./api.js";

const REFRESH_DEBOUNCE_MS = 400;
const DISPLAY_CAP = 99;

export class UnreadBadges {
  /**
   * lists: <ul>s whose rows carry data-room-id and contain the room's link (<a>).
   * currentRoom: the room open on this page (never badged: it is being read).
   * onChange(total): after any count changed (the tab title and the phone's room-list button).
   */
  constructor({ lists, currentRoom = null, onChange = () => {} }) {
    this.onChange = onChange;
    this.lists = lists.filter(Boolean);
    this.currentRoom = currentRoom;
    this.me = null;
    this.counts = new Map(); // room id -> unread messages from others
    this.latest = new Map(); // room id -> highest change number we know of
    this.refreshTimer = null;
    this.refreshing = false;
  }

  count(roomId) {
    return this.counts.get(roomId) || 0;
  }

  set(roomId, count) {
    this.counts.set(roomId, roomId === this.currentRoom ? 0 : Math.max(0, count));
    this.render(roomId);
    this.onChange(this.total());
  }

  /** Unread messages over all my rooms. */
  total() {
    let sum = 0;
    for (const count of this.counts.values()) sum += count;
    return sum;
  }

  noteNumber(roomId, number) {
    if (typeof number === "number") this.latest.set(roomId, Math.max(this.latest.get(roomId) || 0, number));
  }

  onFrame(frame) {
    switch (frame.type) {
      case "session.ready":
        this.me = frame.user;
        for (const [roomId, number] of Object.entries(frame.rooms)) this.noteNumber(roomId, number);
        // A session.ready that another tab's shared connection (or a resumed stream) gave this
        // page has no counts (live.js): they are read afresh.
        if (frame.unread === null) this.refreshSoon();
        else for (const roomId of Object.keys(frame.rooms)) this.set(roomId, frame.unread?.[roomId] || 0);
        break;
      case "message.new":
        this.noteNumber(frame.room, frame.sequence);
        if (frame.message.sender?.id !== this.me && frame.room !== this.currentRoom) {
          this.set(frame.room, this.count(frame.room) + 1);
        }
        break;
      case "message.edit":
        this.noteNumber(frame.room, frame.sequence);
        break;
      case "message.delete":
        this.noteNumber(frame.room, frame.sequence);
        // Was the deleted message one of the unread ones? Only the server knows for sure.
        if (this.count(frame.room) > 0 && frame.message.sender?.id !== this.me) this.refreshSoon();
        break;
      case "receipt":
        if (frame.user.id !== this.me || frame.read_sequence === null) break;
        if (frame.read_sequence >= (this.latest.get(frame.room) || 0)) this.set(frame.room, 0);
        else if (this.count(frame.room) > 0) this.refreshSoon();
        break;
      case "room.added":
        this.noteNumber(frame.room.id, frame.room.last_sequence);
        if (frame.room.last_sequence > 0) this.refreshSoon(); // it may hold messages I have not read
        this.render(frame.room.id);
        break;
      case "room.removed":
        this.counts.delete(frame.room);
        this.onChange(this.total());
        break;
      default:
    }
  }

  /** Re-read exact counts over REST (debounced: a burst of frames makes one request). */
  refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), REFRESH_DEBOUNCE_MS);
  }

  async refresh() {
    if (this.refreshing) {
      this.refreshSoon();
      return;
    }
    this.refreshing = true;
    try {
      const { results } = await getJson("/api/v1/rooms/");
      for (const room of results) {
        this.noteNumber(room.id, room.last_sequence);
        this.set(room.id, room.unread || 0);
      }
    } catch (error) {
      console.warn("Parley: could not refresh unread counts", error);
    } finally {
      this.refreshing = false;
    }
  }

  /** Draw (or remove) the badge of one room in every list; call after re-rendering a row. */
  render(roomId) {
    const count = this.count(roomId);
    for (const list of this.lists) {
      const row = list.querySelector(`[data-room-id="${CSS.escape(roomId)}"]`);
      const link = row?.querySelector("a");
      if (!link) continue;
      let badge = link.querySelector(".unread-badge");
      link.classList.toggle("has-unread", count > 0);
      if (!count) {
        badge?.remove();
        continue;
      }
      if (!badge) {
        badge = el("span", { class: "unread-badge", "data-testid": "unread" });
        link.append(badge);
      }
      badge.textContent = count > DISPLAY_CAP ? `${DISPLAY_CAP}+` : String(count);
      const label = `${count} unread message${count === 1 ? "" : "s"}`;
      badge.setAttribute("aria-label", label);
      badge.title = label;
    }
  }
}
