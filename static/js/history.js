// Loading the room's history over REST, by message sequence: the newest page first, then older
// pages as the reader scrolls up, into the Timeline (timeline.js). Also the status line above
// the list: "Loading…", "Couldn't load", or the room's beginning.
import { el, roomIcon } from "./dom.js";

export class History {
  #box;
  #timeline;
  #scroller;
  #pageSize;
  #fetchPage;
  #onError;
  #canLoad;
  #room;
  #afterLoad;
  #retryNewest;
  #loadingOlder = false;

  /**
   * box: the status line above the list. fetchPage(params): GET …/messages/?params.
   * onError(error): returns true if it dealt with the failure (e.g. we were removed).
   * canLoad(): false once we are out of the room. room(): {kind, name} for the beginning banner.
   * afterLoad(): rows were added. retryNewest(): "Try again" when even the first page failed.
   */
  constructor(box, { timeline, scroller, pageSize, fetchPage, onError, canLoad, room, afterLoad, retryNewest }) {
    this.#box = box;
    this.#timeline = timeline;
    this.#scroller = scroller;
    this.#pageSize = pageSize;
    this.#fetchPage = fetchPage;
    this.#onError = onError;
    this.#canLoad = canLoad;
    this.#room = room;
    this.#afterLoad = afterLoad;
    this.#retryNewest = retryNewest;
  }

  /** The newest page, scrolled to the bottom. Returns whether it loaded. */
  async loadNewest() {
    this.#setStatus("loading");
    try {
      const page = await this.#fetchPage({ limit: this.#pageSize });
      // Newest first from the server; inserting oldest first makes every insert an append.
      this.#timeline.upsertAll([...page.results].reverse(), { history: true });
      if (page.has_more) this.#setStatus("idle");
      else this.#markBeginning();
      this.#scroller.toBottom();
      this.#fillViewport();
      this.#afterLoad();
      return true;
    } catch (error) {
      if (!this.#onError(error)) this.#setStatus("error");
      return false;
    }
  }

  /** The page before the oldest message shown, without moving what the reader looks at. */
  async loadOlder() {
    const timeline = this.#timeline;
    if (this.#loadingOlder || timeline.reachedBeginning || timeline.lowest === null || !this.#canLoad()) return;
    this.#loadingOlder = true;
    this.#setStatus("loading");
    let ok = false;
    try {
      const page = await this.#fetchPage({ before_sequence: timeline.lowest, limit: this.#pageSize });
      const more = page.has_more && page.results.length > 0;
      this.#scroller.keepingPosition(() => {
        this.#setStatus(more ? "idle" : "beginning");
        timeline.upsertAll(page.results, { history: true });
      });
      if (!more) this.#markBeginning();
      this.#afterLoad();
      ok = true;
    } catch (error) {
      if (!this.#onError(error)) this.#scroller.keepingPosition(() => this.#setStatus("error"));
    } finally {
      this.#loadingOlder = false;
    }
    // The reader may still be at the top (a fast fling, or a tall window): keep going.
    if (ok && this.#scroller.nearTop()) this.loadOlder();
  }

  /**
   * Older pages until the message numbered `sequence` is shown (a search result opened here), at
   * most `maxPages` of them. Returns whether it is shown.
   */
  async loadBackTo(sequence, maxPages = 40) {
    const timeline = this.#timeline;
    for (let pages = 0; pages < maxPages; ) {
      if (timeline.lowest !== null && timeline.lowest <= sequence) return true;
      if (timeline.reachedBeginning || timeline.lowest === null || !this.#canLoad()) return false;
      if (this.#loadingOlder) {
        await new Promise((resolve) => requestAnimationFrame(resolve)); // a scroll's page is on its way
        continue;
      }
      const lowest = timeline.lowest;
      await this.loadOlder();
      if (timeline.lowest === lowest && !timeline.reachedBeginning) return false; // it failed
      pages += 1;
    }
    return timeline.lowest !== null && timeline.lowest <= sequence;
  }

  /** The room was renamed: the beginning banner names it. */
  refreshBanner() {
    if (this.#timeline.reachedBeginning) this.#setStatus("beginning");
  }

  /** A short page in a tall window leaves no scrollbar to scroll with: load until there is one. */
  #fillViewport() {
    if (this.#scroller.fits()) this.loadOlder();
  }

  #markBeginning() {
    this.#timeline.markBeginning();
    this.#setStatus("beginning");
  }

  #setStatus(status) {
    const box = this.#box;
    box.dataset.state = status;
    box.replaceChildren();
    if (status === "loading") box.append("Loading messages…");
    else if (status === "beginning") {
      const room = this.#room();
      box.append(
        el("div", { class: "beginning-icon", "aria-hidden": "true" }, roomIcon(room.kind)),
        el("p", { class: "beginning-name" }, room.name),
        el("p", { class: "beginning-text" }, "This is the beginning of the room"),
      );
    } else if (status === "error") {
      const retry = el("button", { type: "button", class: "btn btn-secondary btn-sm" }, "Try again");
      retry.addEventListener("click", () => (this.#timeline.lowest === null ? this.#retryNewest() : this.loadOlder()));
      box.append("Couldn't load messages. ", retry);
    }
  }
}
