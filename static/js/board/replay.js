// Replay (time travel): a slider over the board's log (GET /api/v1/boards/{id}/history/); each
// position shows the board as it was after that update (GET .../state/?at=N, a Yjs state drawn
// read-only), with who made the change and which elements it touched. Live updates keep arriving
// in the background and show again when replay ends.
import { el } from "../dom.js";
import { getJson } from "../api.js";
import { BoardDoc, fromBase64, Y } from "./doc.js";

const entriesOf = (data) => (Array.isArray(data) ? data : data?.results || data?.history || data?.updates || data?.entries || []);
const touchedOf = (entry) => entry.elements || entry.element_ids || entry.touched || [];
const stateOf = (data) => data?.state ?? data?.update ?? "";

export class Replay {
  constructor(panel, { board, app }) {
    this.panel = panel;
    this.board = board;
    this.app = app;
    this.entries = [];
    this.open = false;
    this.request = 0;
    this.slider = el("input", { type: "range", min: 0, max: 0, step: 1, value: 0, "aria-label": "Board history", "data-replay-slider": true });
    this.info = el("span", { class: "replay-info", "data-replay-info": true, "aria-live": "polite" });
    const live = el("button", { type: "button", class: "btn btn-secondary btn-xs" }, "Back to live");
    live.addEventListener("click", () => this.close());
    panel.replaceChildren(el("span", { class: "replay-label" }, "History"), this.slider, this.info, live);
    this.slider.addEventListener("input", () => this.show(Number(this.slider.value)));
  }

  url(suffix) {
    return `/api/v1/boards/${encodeURIComponent(this.board)}/${suffix}`;
  }

  async toggle() {
    if (this.open) this.close();
    else await this.start();
    return this.open;
  }

  async start() {
    this.open = true;
    this.panel.hidden = false;
    this.info.textContent = "Loading history…";
    try {
      const entries = [];
      let after = 0;
      for (let page = 0; page < 200; page++) {
        const data = await getJson(`${this.url("history/")}?after_sequence=${after}&limit=500`);
        const got = entriesOf(data);
        entries.push(...got);
        if (!data?.has_more || !got.length) break;
        after = got[got.length - 1].sequence;
      }
      this.entries = entries.sort((a, b) => a.sequence - b.sequence);
    } catch (error) {
      this.info.textContent = "History is not available.";
      console.warn("Parley: history", error);
      return;
    }
    this.slider.max = String(this.entries.length);
    this.slider.value = String(this.entries.length);
    await this.show(this.entries.length);
  }

  /** Show the board after the `index`-th update of the log (0: empty, before any). */
  async show(index) {
    const request = ++this.request;
    const entry = index > 0 ? this.entries[index - 1] : null;
    const sequence = entry ? entry.sequence : 0;
    let doc;
    if (sequence === 0) doc = new BoardDoc({ editable: false });
    else {
      let data;
      try {
        data = await getJson(`${this.url("state/")}?at=${sequence}`);
      } catch (error) {
        if (request === this.request) this.info.textContent = `Could not load #${sequence}.`;
        return;
      }
      if (request !== this.request || !this.open) return;
      const ydoc = new Y.Doc();
      const state = stateOf(data);
      if (state) Y.applyUpdate(ydoc, fromBase64(state));
      doc = new BoardDoc({ editable: false, doc: ydoc });
    }
    if (request !== this.request || !this.open) return;
    this.app.showReplay(doc, entry ? touchedOf(entry) : []);
    this.panel.dataset.sequence = String(sequence);
    this.panel.dataset.count = String(doc.size);
    if (!entry) this.info.textContent = `Before the first change · ${doc.size} elements`;
    else {
      const who = entry.user?.username || "someone";
      const when = entry.created_at ? new Date(entry.created_at).toLocaleString() : "";
      const touched = touchedOf(entry).length;
      this.info.textContent = `#${sequence} of ${this.entries.at(-1).sequence} · ${who} changed ${touched} element${touched === 1 ? "" : "s"} · ${when} · ${doc.size} elements`;
    }
  }

  close() {
    if (!this.open) return;
    this.open = false;
    this.request++;
    this.panel.hidden = true;
    this.app.showReplay(null);
    this.app.container.querySelector('[data-action="history"]')?.setAttribute("aria-pressed", "false");
  }
}
