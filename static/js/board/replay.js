// Replay (time travel): a slider over the board's log (GET /api/v1/boards/{id}/history/); each
// position shows the board as it was after that update (GET .../state/?at=N, a Yjs state drawn
// read-only), with who made the change and which elements it touched. Live updates keep arriving
// in the background and show again when replay ends.
//
// Below the log's prune point (`log_start`: compaction folded the updates up to it into snapshots)
// there is no update to step through, only the checkpoints the history lists: the slider's left
// part steps from checkpoint to checkpoint, and says so (the state at each is exact; what happened
// between two of them, and who did it, is not known any more).
import { displayName, el } from "../dom.js";
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
    this.stops = []; // slider positions: {kind: "empty" | "checkpoint" | "update", sequence, entry?}
    this.logStart = 0;
    this.open = false;
    this.request = 0;
    this.slider = el("input", { type: "range", min: 0, max: 0, step: 1, value: 0, "aria-label": "Board history", "data-replay-slider": true });
    this.info = el("span", { class: "replay-info", "data-replay-info": true, "aria-live": "polite" });
    this.note = el("span", { class: "replay-note muted small", "data-replay-note": true, hidden: true });
    const live = el("button", { type: "button", class: "btn btn-secondary btn-xs" }, "Back to live");
    live.addEventListener("click", () => this.close());
    panel.replaceChildren(el("span", { class: "replay-label" }, "History"), this.slider, this.info, this.note, live);
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
    let checkpoints = [];
    try {
      const entries = [];
      let after = 0;
      for (let page = 0; page < 200; page++) {
        const data = await getJson(`${this.url("history/")}?after_sequence=${after}&limit=500`);
        const got = entriesOf(data);
        entries.push(...got);
        if (page === 0) {
          this.logStart = Number(data?.log_start) || 0;
          checkpoints = Array.isArray(data?.checkpoints) ? data.checkpoints : [];
        }
        if (!data?.has_more || !got.length) break;
        after = got[got.length - 1].sequence;
      }
      this.entries = entries.sort((a, b) => a.sequence - b.sequence);
    } catch (error) {
      this.info.textContent = "History is not available.";
      console.warn("Parley: history", error);
      return;
    }
    // Checkpoints at or below the prune point, then every update of the log after it.
    const below = [...new Set(checkpoints.filter((n) => Number.isInteger(n) && n > 0 && n <= this.logStart))].sort((a, b) => a - b);
    this.stops = [
      { kind: "empty", sequence: 0 },
      ...below.map((sequence) => ({ kind: "checkpoint", sequence })),
      ...this.entries.filter((entry) => entry.sequence > this.logStart).map((entry) => ({ kind: "update", sequence: entry.sequence, entry })),
    ];
    this.note.hidden = this.logStart === 0;
    this.note.textContent = this.logStart
      ? `Up to #${this.logStart} the log was compacted: ${below.length} checkpoint${below.length === 1 ? "" : "s"} there, each change after it`
      : "";
    this.panel.dataset.logStart = String(this.logStart);
    this.panel.dataset.checkpoints = String(below.length);
    const last = this.stops.length - 1;
    this.slider.max = String(last);
    this.slider.value = String(last);
    await this.show(last);
  }

  /** Show the board at the `index`-th stop of the slider (0: empty, before any change). */
  async show(index) {
    const request = ++this.request;
    const stop = this.stops[index] || this.stops[0] || { kind: "empty", sequence: 0 };
    const entry = stop.entry || null;
    let sequence = stop.sequence;
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
      if (Number.isInteger(data?.sequence)) sequence = data.sequence; // below the log: the checkpoint's
    }
    if (request !== this.request || !this.open) return;
    this.app.showReplay(doc, entry ? touchedOf(entry) : []);
    this.panel.dataset.sequence = String(sequence);
    this.panel.dataset.kind = stop.kind;
    this.panel.dataset.count = String(doc.size);
    const latest = this.stops.at(-1)?.sequence ?? 0;
    if (stop.kind === "empty") this.info.textContent = `Before the first change · ${doc.size} elements`;
    else if (stop.kind === "checkpoint" || !entry) {
      this.info.textContent = `Checkpoint #${sequence} of ${latest} · ${doc.size} elements · compacted: who changed what before #${this.logStart + 1} is not kept`;
    } else {
      const who = displayName(entry.user) || "someone";
      const when = entry.created_at ? new Date(entry.created_at).toLocaleString() : "";
      const touched = touchedOf(entry).length;
      this.info.textContent = `#${sequence} of ${latest} · ${who} changed ${touched} element${touched === 1 ? "" : "s"} · ${when} · ${doc.size} elements`;
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
