// The simulator on a board (docs/protocol.md "Simulations"; issue 14): a side panel with the
// component palette (click or drag a kind onto the canvas), an inspector of the selected component's
// or connector's parameters (written into the element's `params` in the Yjs document: collaborative
// and undoable like any edit), the design's problems, run controls (start, cancel, inject a fault),
// the board's runs (show one on the canvas, export, compare two) and two small charts; and the
// canvas overlay (overlay.js) of the shown run. Run figures never go into the document.
//
// attachSimulator(app) is the board client's one hook (static/js/board/app.js): it builds the panel
// and listens to the app through its public surface (onFrame, setCanEdit, onSocketState, destroy are
// wrapped; the selection and replay are read from the container's data attributes).
import { el } from "../dom.js";
import { getJson, sendJson } from "../api.js";
import { toBoard } from "../board/geometry.js";
import { svg } from "../board/render.js";
import { KIND_ICONS, SimOverlay } from "./overlay.js";
import { chartPath, figuresOf, formatMs, formatPercent, isActive, RunTracker } from "./model.js";

const COMPONENT_SIZE = [160, 80];
const DESIGN_DEBOUNCE_MS = 700;
const CHART = { width: 260, height: 70 };
const FAULT_VALUES = {
  kill: ["count", "instances", 1],
  latency: ["latency_ms", "ms", 200],
  error: ["error_rate", "rate", 0.5],
  slow: ["factor", "×", 3],
  partition: null,
};
const SPEEDS = [
  ["1", "1× (real time)"],
  ["5", "5×"],
  ["20", "20×"],
  ["", "As fast as possible"],
];

let palettePromise = null;
export function loadPalette() {
  palettePromise ||= getJson("/api/v1/simulator/palette/").catch((error) => {
    palettePromise = null;
    throw error;
  });
  return palettePromise;
}

let stylesheetAdded = false;
/** static/css/simulator.css, once per page (a stylesheet of 'self': the page's policy allows it). */
export function addStylesheet() {
  if (stylesheetAdded || typeof document === "undefined") return;
  stylesheetAdded = true;
  const href = new URL("../../css/simulator.css", import.meta.url).href;
  if ([...document.querySelectorAll("link[rel=stylesheet]")].some((link) => link.href === href)) return;
  document.head.append(el("link", { rel: "stylesheet", href }));
}

const api = (path) => `/api/v1/${path}`;
const enc = encodeURIComponent;

function svgIcon(path) {
  const icon = svg("svg", { viewBox: "0 0 16 16", class: "sim-kind-icon", "aria-hidden": "true" });
  icon.append(svg("path", { d: path }));
  return icon;
}

function field(label, control, help = "") {
  return el("label", { class: "sim-field", title: help }, el("span", { class: "sim-field-label" }, label), control);
}

export function attachSimulator(app) {
  return new BoardSimulator(app);
}

export class BoardSimulator {
  constructor(app) {
    addStylesheet();
    this.app = app;
    this.tracker = new RunTracker();
    this.problems = [];
    this.designValid = null;
    this.shownId = null;
    this.details = new Map(); // run id -> full run (results) once finished
    this.compareIds = [];
    this.palette = null;
    this.boundDoc = null;
    this.frameQueued = false;
    this.designTimer = null;
    this.inspected = null;
    this.#build();
    this.overlay = new SimOverlay(app.view);
    this.#wrap();
    this.#bindDoc();
    new MutationObserver(() => {
      this.overlay.hide(Boolean(this.app.replaying));
      this.#renderInspector();
      this.#paintFaultTarget();
      this.#requestRender();
    }).observe(app.container, { attributes: true, attributeFilter: ["data-selection", "data-replaying"] });
    loadPalette()
      .then((palette) => {
        this.palette = palette;
        this.#renderPalette();
        this.#renderInspector();
      })
      .catch((error) => console.warn("Parley: simulator palette", error));
  }

  // --- hooks into the board app ----------------------------------------------------------------

  #wrap() {
    const app = this.app;
    const onFrame = app.onFrame.bind(app);
    app.onFrame = (frame) => {
      onFrame(frame);
      this.onFrame(frame);
    };
    const setCanEdit = app.setCanEdit.bind(app);
    app.setCanEdit = (canEdit) => {
      setCanEdit(canEdit);
      this.#paintRole();
    };
    const destroy = app.destroy.bind(app);
    app.destroy = () => {
      this.destroy();
      destroy();
    };
  }

  /** Follow the app's document (a new one after a refused change). */
  #bindDoc() {
    const doc = this.app.doc;
    if (doc === this.boundDoc) return;
    this.boundDoc = doc;
    doc.doc.on("afterTransaction", () => {
      if (this.app.doc !== doc) return;
      this.#requestRender();
      this.#scheduleDesign();
      if (this.inspected && !this.ui.inspector.contains(document.activeElement)) this.#renderInspector();
    });
  }

  onFrame(frame) {
    this.#bindDoc();
    const mine = frame.board === this.app.board.id;
    if (frame.type === "board.state" && mine) {
      // A board that holds a design opens with the panel (where there is room for it), once.
      if (!this.autoOpened && this.#hasDesign()) {
        this.autoOpened = true;
        if (this.panel.hidden && this.app.ui.stage.getBoundingClientRect().width >= 900) this.setOpen(true);
      }
      // Joined (or back after a reconnect): a live run's latest state is in its row, not on the socket.
      this.#loadRuns({ activeOnly: this.panel.hidden });
      this.#scheduleDesign(0);
      return;
    }
    if (!frame.type.startsWith("simulation.") || !mine) return;
    let run = null;
    switch (frame.type) {
      case "simulation.started":
        run = this.tracker.upsert({ ...frame.simulation, id: frame.run });
        this.shownId = run.id;
        this.ui.faults.hidden = true;
        break;
      case "simulation.progress":
        run = this.tracker.progress(frame);
        if (!this.shownId || !isActive(this.tracker.runs.get(this.shownId))) this.shownId = run.id;
        break;
      case "simulation.fault":
        run = this.tracker.fault(frame);
        this.ui.faults.textContent = `Fault injected: ${frame.fault.kind} on ${frame.fault.component_id}${frame.user ? ` by ${frame.user.username}` : ""} at ${Math.round(frame.fault.at_s ?? 0)} s.`;
        this.ui.faults.hidden = false;
        break;
      case "simulation.finished":
        run = this.tracker.finished(frame);
        if (frame.status === "failed") this.#say(frame.error || "The run failed.");
        if (this.shownId === frame.run) this.#loadDetail(frame.run); // the charts' whole time series
        break;
      default:
        return;
    }
    this.#paintRuns();
    this.#requestRender();
  }

  destroy() {
    clearTimeout(this.designTimer);
    this.overlay.under.remove();
    this.overlay.over.remove();
  }

  // --- the panel -------------------------------------------------------------------------------

  #build() {
    const container = this.app.container;
    const q = (selector) => container.querySelector(selector);
    this.toggle = el("button", { type: "button", class: "btn btn-ghost btn-sm", "data-sim-toggle": true, "aria-pressed": "false" }, "Simulate");
    this.toggle.addEventListener("click", (event) => {
      event.stopPropagation();
      this.setOpen(this.panel.hidden);
    });
    const panels = q('[aria-label="Panels"]') || q(".board-toolbar");
    panels.prepend(this.toggle);
    this.chip = el("span", { class: "sim-chip", "data-sim-status": "", hidden: true, role: "status", "aria-live": "polite" });
    q(".board-header")?.insertBefore(this.chip, q("[data-board-conn]"));

    this.ui = {
      palette: el("div", { class: "sim-palette", "data-sim-palette": true }),
      inspector: el("div", { class: "sim-inspector", "data-sim-inspector": true }),
      problems: el("ul", { class: "sim-problems", "data-sim-problems": true }),
      message: el("p", { class: "sim-message small", "data-sim-message": true, role: "status", hidden: true }),
      faults: el("p", { class: "sim-message small", "data-sim-fault-log": true, role: "status", hidden: true }),
      status: el("div", { class: "sim-status", "data-sim-run-status": true }),
      bottleneck: el("p", { class: "sim-bottleneck-text", "data-sim-bottleneck-text": true, hidden: true }),
      charts: el("div", { class: "sim-charts", "data-sim-charts": true }),
      runs: el("ul", { class: "sim-runs", "data-sim-runs": true }),
      compare: el("div", { class: "sim-compare", "data-sim-comparison": true }),
    };
    this.form = el(
      "form",
      { class: "sim-start", "data-sim-start": true },
      field("Duration (s)", el("input", { type: "number", name: "duration_s", min: 1, max: 3600, step: 1, value: 60, class: "input" }), "simulated seconds"),
      field("Seed", el("input", { type: "number", name: "seed", min: 0, step: 1, placeholder: "random", class: "input" }), "the same seed gives the same figures"),
      field("Speed", el("select", { name: "speed", class: "input" }, ...SPEEDS.map(([value, label]) => el("option", { value, selected: value === "5" }, label))), "simulated seconds per second"),
      el("button", { type: "submit", class: "btn btn-primary btn-sm", "data-sim-action": "start" }, "Run"),
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    this.cancelButton = el("button", { type: "button", class: "btn btn-secondary btn-sm", "data-sim-action": "cancel", hidden: true }, "Cancel run");
    this.cancelButton.addEventListener("click", () => this.cancel());
    this.faultForm = el(
      "form",
      { class: "sim-fault", "data-sim-fault": true, hidden: true },
      field("Fault", el("select", { name: "kind", class: "input" }, ...Object.keys(FAULT_VALUES).map((kind) => el("option", { value: kind }, kind)))),
      field("On", el("select", { name: "component_id", class: "input" })),
      field("Value", el("input", { type: "number", name: "value", step: "any", class: "input", value: 1 })),
      el("button", { type: "submit", class: "btn btn-secondary btn-sm", "data-sim-action": "inject" }, "Inject"),
    );
    this.faultForm.kind.addEventListener("change", () => this.#paintFaultValue());
    this.faultForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.inject();
    });
    this.compareButton = el("button", { type: "button", class: "btn btn-secondary btn-xs", "data-sim-action": "compare", disabled: true }, "Compare");
    this.compareButton.addEventListener("click", () => this.compare());
    const section = (title, ...children) => el("section", { class: "sim-section" }, el("h3", { class: "sim-heading" }, title), ...children);
    this.paletteSection = section("Components", el("p", { class: "small muted" }, "Click or drag onto the canvas; connect them with the arrow tool."), this.ui.palette);
    this.runControls = el("div", { class: "sim-controls" }, this.form, this.cancelButton, this.faultForm);
    this.panel = el(
      "aside",
      { class: "sim-panel", "data-sim-panel": true, hidden: true, "aria-label": "Simulator" },
      this.paletteSection,
      section("Selected", this.ui.inspector),
      section("Design", this.ui.problems),
      section("Run", this.runControls, this.ui.message, this.ui.faults, this.ui.status, this.ui.bottleneck, this.ui.charts),
      section("Runs", this.ui.runs, el("div", { class: "sim-row" }, this.compareButton), this.ui.compare),
    );
    this.panel.addEventListener("click", (event) => this.#onPanelClick(event));
    this.panel.addEventListener("change", (event) => this.#onPanelChange(event));
    this.panel.addEventListener("keydown", (event) => event.stopPropagation()); // not the board's shortcuts
    q(".board-body").append(this.panel);
    this.#paintFaultValue();
    this.#paintRole();
    this.#renderInspector();
    this.#paintProblems();
    this.#paintRuns();
  }

  setOpen(open) {
    this.panel.hidden = !open;
    this.toggle.setAttribute("aria-pressed", String(open));
    if (open) this.#loadRuns({ activeOnly: false });
  }

  #paintRole() {
    const canEdit = Boolean(this.app.canEdit);
    this.paletteSection.hidden = !canEdit;
    this.runControls.hidden = !canEdit;
    this.#renderInspector();
    this.#paintStatus();
  }

  #say(text) {
    this.ui.message.textContent = text || "";
    this.ui.message.hidden = !text;
  }

  // --- palette ---------------------------------------------------------------------------------

  #renderPalette() {
    const buttons = (this.palette?.kinds || []).map((spec) => {
      const button = el(
        "button",
        { type: "button", class: "sim-kind", "data-sim-kind": spec.kind, title: spec.description, "aria-label": `Add ${spec.label}` },
        svgIcon(KIND_ICONS[spec.kind] || KIND_ICONS.service),
        el("span", {}, spec.label),
      );
      button.addEventListener("pointerdown", (event) => this.#dragStart(event, spec));
      button.addEventListener("click", (event) => {
        if (event.detail === 0) this.place(spec.kind); // keyboard: pointer clicks place on pointerup
      });
      return button;
    });
    this.ui.palette.replaceChildren(...buttons);
  }

  #dragStart(event, spec) {
    if (event.button !== 0 || !this.app.canEdit) return;
    event.preventDefault();
    const start = { x: event.clientX, y: event.clientY };
    let ghost = null;
    const move = (moveEvent) => {
      if (!ghost && Math.hypot(moveEvent.clientX - start.x, moveEvent.clientY - start.y) > 4) {
        ghost = el("div", { class: "sim-ghost" }, spec.label);
        document.body.append(ghost);
      }
      if (ghost) {
        ghost.style.left = `${moveEvent.clientX}px`;
        ghost.style.top = `${moveEvent.clientY}px`;
      }
    };
    const up = (upEvent) => {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      const dragged = Boolean(ghost);
      ghost?.remove();
      if (!dragged) {
        this.place(spec.kind);
        return;
      }
      const rect = this.app.ui.stage.getBoundingClientRect();
      const inside = upEvent.clientX >= rect.left && upEvent.clientX <= rect.right && upEvent.clientY >= rect.top && upEvent.clientY <= rect.bottom;
      if (inside) this.place(spec.kind, toBoard(this.app.view.view, { x: upEvent.clientX - rect.left, y: upEvent.clientY - rect.top }));
    };
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  }

  /** Add a component of `kind` centred at `at` (board coordinates; default: the view's centre). */
  place(kind, at = null) {
    const spec = this.palette?.kinds.find((k) => k.kind === kind);
    if (!spec || !this.app.canEdit) return null;
    const doc = this.app.doc;
    if (!at) {
      const rect = this.app.ui.stage.getBoundingClientRect();
      at = toBoard(this.app.view.view, { x: rect.width / 2, y: rect.height / 2 });
    }
    const [w, h] = COMPONENT_SIZE;
    const same = doc.sorted().filter((element) => element.type === "component" && element.kind === kind).length;
    const params = Object.fromEntries(spec.params.map((param) => [param.name, param.default]));
    doc.stopCapturing();
    const id = doc.add({ type: "component", kind, params, x: Math.round(at.x - w / 2), y: Math.round(at.y - h / 2), w, h, text: same ? `${spec.label} ${same + 1}` : spec.label, fontSize: 14, stroke: "#1f2937", fill: "transparent" });
    doc.stopCapturing();
    if (id) this.app.setSelection([id]);
    return id;
  }

  // --- inspector -------------------------------------------------------------------------------

  #selected() {
    const ids = this.app.selection || [];
    if (ids.length !== 1) return null;
    const element = this.app.doc.get(ids[0]);
    if (!element) return null;
    if (element.type === "component") return element;
    if (element.type === "arrow" && [element.from, element.to].some((id) => this.app.doc.get(id)?.type === "component")) return element;
    return null;
  }

  #renderInspector() {
    if (!this.ui) return;
    const element = this.#selected();
    const box = this.ui.inspector;
    this.inspected = element?.id || null;
    if (!element) {
      box.dataset.shown = "";
      box.replaceChildren(el("p", { class: "small muted" }, "Select a component or a connector to see its parameters."));
      return;
    }
    if (box.contains(document.activeElement) && box.dataset.element === element.id) return; // typing in it
    const readOnly = !this.app.canEdit;
    // Dragging the element changes its x/y many times a second: redraw only when what is shown changed.
    const shown = JSON.stringify([element.id, element.params ?? null, element.text ?? "", readOnly, Boolean(this.palette)]);
    if (box.dataset.shown === shown) return;
    box.dataset.shown = shown;
    box.dataset.element = element.id;
    const params = element.params && typeof element.params === "object" ? element.params : {};
    let specs;
    let title;
    if (element.type === "component") {
      const spec = this.palette?.kinds.find((k) => k.kind === element.kind);
      specs = spec?.params || [];
      title = `${spec?.label || element.kind} · ${element.id}`;
    } else {
      specs = this.palette?.connector_params || [];
      title = `Connector · ${element.id}`;
    }
    const rows = [el("p", { class: "sim-inspected small", "data-sim-inspected": element.id }, title)];
    if (element.type === "component") {
      rows.push(field("Label", el("input", { class: "input", name: "label", value: String(element.text || "").split("\n")[0], disabled: readOnly, "data-sim-label-input": true })));
    }
    for (const spec of specs) {
      const value = params[spec.name] ?? spec.default;
      let control;
      if (spec.type === "choice") {
        control = el("select", { class: "input", disabled: readOnly }, ...spec.choices.map((choice) => el("option", { value: choice, selected: choice === value }, choice)));
      } else if (spec.type === "bool") {
        control = el("input", { type: "checkbox", checked: Boolean(value), disabled: readOnly });
      } else {
        control = el("input", { type: "number", class: "input", value: String(value), step: spec.type === "int" ? 1 : "any", disabled: readOnly });
        if (spec.min !== undefined) control.min = String(spec.min);
        if (spec.max !== undefined) control.max = String(spec.max);
      }
      control.dataset.simParam = spec.name;
      control.dataset.simType = spec.type;
      rows.push(field(spec.unit ? `${spec.name} (${spec.unit})` : spec.name, control, spec.help));
    }
    box.replaceChildren(...rows);
  }

  #onPanelChange(event) {
    const target = event.target;
    if (target.dataset.simParam) this.#setParam(target);
    else if (target.dataset.simLabelInput !== undefined && target.name === "label") this.#setLabel(target.value);
    else if (target.dataset.simCompare !== undefined) this.#pickCompare(target);
  }

  #setParam(control) {
    const element = this.#selected();
    if (!element || !this.app.canEdit) return;
    let value;
    if (control.dataset.simType === "bool") value = control.checked;
    else if (control.dataset.simType === "choice") value = control.value;
    else {
      value = Number(control.value);
      if (control.value === "" || !Number.isFinite(value)) return;
      if (control.dataset.simType === "int") value = Math.round(value);
    }
    const params = { ...(element.params && typeof element.params === "object" ? element.params : {}), [control.dataset.simParam]: value };
    this.app.doc.stopCapturing();
    this.app.doc.update(element.id, { params });
    this.app.doc.stopCapturing();
  }

  #setLabel(label) {
    const element = this.#selected();
    if (!element || element.type !== "component" || !this.app.canEdit) return;
    const rest = String(element.text || "").split("\n").slice(1);
    this.app.doc.stopCapturing();
    this.app.doc.update(element.id, { text: [label, ...rest].join("\n") });
    this.app.doc.stopCapturing();
  }

  // --- design problems -------------------------------------------------------------------------

  #hasDesign() {
    return this.app.doc.sorted().some((element) => element.type === "component");
  }

  #scheduleDesign(wait = DESIGN_DEBOUNCE_MS) {
    clearTimeout(this.designTimer);
    this.designTimer = setTimeout(() => this.#loadDesign(), wait);
  }

  async #loadDesign() {
    if (!this.#hasDesign()) {
      if (this.problems.length || this.designValid !== null) {
        this.problems = [];
        this.designValid = null;
        this.#paintProblems();
        this.#requestRender();
      }
      return;
    }
    // The server reads the design from its copy of the document: ask once ours is acknowledged.
    if (!this.app.sync.joined || this.app.sync.outbox.size) {
      this.#scheduleDesign(300);
      return;
    }
    try {
      const data = await getJson(api(`boards/${enc(this.app.board.id)}/design/`));
      this.problems = data.problems || [];
      this.designValid = Boolean(data.valid);
    } catch (error) {
      console.warn("Parley: simulator design", error);
      return;
    }
    this.#paintProblems();
    this.#requestRender();
  }

  #paintProblems() {
    const list = this.ui.problems;
    list.dataset.valid = this.designValid === null ? "" : String(this.designValid);
    if (this.designValid === null) {
      list.replaceChildren(el("li", { class: "small muted" }, "No components yet."));
      return;
    }
    if (!this.problems.length) {
      list.replaceChildren(el("li", { class: "small sim-ok" }, "The design can run."));
      return;
    }
    list.replaceChildren(
      ...this.problems.map((problem) => {
        const item = el("li", { class: `small sim-problem-item is-${problem.severity}`, "data-sim-problem-item": problem.element_id || "", title: problem.element_id || "" }, this.#named(problem.message));
        if (problem.element_id) {
          item.tabIndex = 0;
          item.addEventListener("click", () => this.app.doc.has(problem.element_id) && this.app.setSelection([problem.element_id]));
        }
        return item;
      }),
    );
  }

  // --- runs ------------------------------------------------------------------------------------

  async #loadRuns({ activeOnly }) {
    try {
      const data = await getJson(api(`boards/${enc(this.app.board.id)}/simulations/${activeOnly ? "?active=1" : ""}`));
      for (const run of data.results || []) this.tracker.upsert(run);
    } catch (error) {
      console.warn("Parley: simulations", error);
      return;
    }
    const active = this.tracker.active();
    if (active && (!this.shownId || !isActive(this.tracker.runs.get(this.shownId)))) this.shownId = active.id;
    this.#paintRuns();
    this.#requestRender();
  }

  async #loadDetail(id) {
    if (this.details.has(id)) return this.details.get(id);
    try {
      const run = await getJson(api(`simulations/${enc(id)}/`));
      this.details.set(id, run);
      this.tracker.upsert({ ...run, results: undefined, design: undefined });
      if (this.shownId === id) this.#paintCharts();
      return run;
    } catch (error) {
      console.warn("Parley: simulation", error);
      return null;
    }
  }

  shown() {
    return this.shownId ? this.tracker.runs.get(this.shownId) || null : null;
  }

  async start() {
    const form = this.form;
    const body = { duration_s: Number(form.duration_s.value) || 60 };
    if (form.seed.value !== "") body.seed = Math.round(Number(form.seed.value));
    body.speed = form.speed.value === "" ? null : Number(form.speed.value);
    this.#say("");
    try {
      const run = await sendJson("POST", api(`boards/${enc(this.app.board.id)}/simulations/`), body);
      this.tracker.upsert(run);
      this.shownId = run.id;
      this.#paintRuns();
      this.#requestRender();
    } catch (error) {
      this.#say(error.message || "The run could not start.");
      if (error.code === "invalid") this.#scheduleDesign(0);
    }
  }

  async cancel() {
    const run = this.shown();
    if (!run || !isActive(run)) return;
    try {
      const answer = this.tracker.upsert(await sendJson("POST", api(`simulations/${enc(run.id)}/cancel/`)));
      this.#say(isActive(answer) ? "Cancelling…" : "");
    } catch (error) {
      this.#say(error.message || "The run could not be cancelled.");
    }
    this.#paintRuns();
  }

  async inject() {
    const run = this.shown();
    if (!run || !isActive(run)) return;
    const form = this.faultForm;
    const fault = { kind: form.kind.value, component_id: form.component_id.value };
    const value = FAULT_VALUES[fault.kind];
    if (value) fault[value[0]] = Number(form.value.value);
    try {
      await sendJson("POST", api(`simulations/${enc(run.id)}/faults/`), fault);
      this.#say(""); // simulation.fault says when the worker applied it
    } catch (error) {
      this.#say(error.message || "The fault was refused.");
    }
  }

  #paintFaultValue() {
    const value = FAULT_VALUES[this.faultForm.kind.value];
    const input = this.faultForm.value;
    input.closest("label").hidden = !value;
    if (value) {
      input.value = String(value[2]);
      input.closest("label").querySelector(".sim-field-label").textContent = value[1];
    }
  }

  /** The fault's target: the components of the shown run's design, the selected one first. */
  #paintFaultTarget() {
    const select = this.faultForm.component_id;
    const ids = this.app.doc.sorted().filter((element) => element.type === "component").map((element) => element.id);
    const selected = this.#selected();
    const current = selected?.type === "component" ? selected.id : select.value;
    const labels = ids.map((id) => [id, String(this.app.doc.get(id)?.text || id).split("\n")[0]]);
    if (select.dataset.ids !== ids.join(",")) {
      select.replaceChildren(...labels.map(([id, label]) => el("option", { value: id }, label === id ? id : `${label} (${id.slice(0, 8)})`)));
      select.dataset.ids = ids.join(",");
    }
    if (ids.includes(current)) select.value = current;
  }

  async compare() {
    const [a, b] = this.compareIds;
    if (!a || !b) return;
    try {
      const data = await getJson(api(`simulations/compare/?a=${enc(a)}&b=${enc(b)}`));
      const cell = (value) => (typeof value === "number" ? (Math.abs(value) >= 100 ? Math.round(value).toLocaleString("en") : String(Math.round(value * 1000) / 1000)) : value === null || value === undefined ? "–" : String(value));
      const rows = (data.end_to_end || []).map((row) => el("tr", {}, el("th", { scope: "row" }, row.metric), el("td", {}, cell(row.a)), el("td", {}, cell(row.b)), el("td", {}, cell(row.delta))));
      this.ui.compare.replaceChildren(
        el("table", { class: "sim-compare-table", "data-sim-compare-table": true }, el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "A"), el("th", {}, "B"), el("th", {}, "B − A"))), el("tbody", {}, ...rows)),
      );
    } catch (error) {
      this.ui.compare.replaceChildren(el("p", { class: "small" }, error.message || "Could not compare."));
    }
  }

  #pickCompare(checkbox) {
    const id = checkbox.dataset.simCompare;
    this.compareIds = this.compareIds.filter((other) => other !== id);
    if (checkbox.checked) this.compareIds.push(id);
    if (this.compareIds.length > 2) this.compareIds = this.compareIds.slice(-2);
    this.compareButton.disabled = this.compareIds.length !== 2;
    this.#paintRuns();
  }

  #onPanelClick(event) {
    const show = event.target.closest("[data-sim-show]");
    if (show) {
      this.shownId = show.dataset.simShow;
      const run = this.shown();
      if (run && !isActive(run)) this.#loadDetail(run.id);
      this.#paintRuns();
      this.#requestRender();
    }
  }

  #paintRuns() {
    const runs = this.tracker.list();
    if (!runs.length) {
      this.ui.runs.replaceChildren(el("li", { class: "small muted" }, "No runs yet."));
    } else {
      this.ui.runs.replaceChildren(
        ...runs.slice(0, 30).map((run) => {
          const when = run.created_at ? new Date(run.created_at).toLocaleTimeString() : "";
          const exportBase = api(`simulations/${enc(run.id)}/export/`);
          return el(
            "li",
            { class: `sim-run${run.id === this.shownId ? " is-shown" : ""}`, "data-sim-run-id": run.id, "data-status": run.status },
            el("input", { type: "checkbox", "aria-label": "Compare", title: "Pick two runs to compare", checked: this.compareIds.includes(run.id), "data-sim-compare": run.id }),
            el("button", { type: "button", class: "btn btn-ghost btn-xs", "data-sim-show": run.id, title: "Show on the canvas" }, `${when} · ${run.status}`),
            el("span", { class: "small muted" }, `${run.duration_s ?? "?"} s · seed ${run.seed ?? "?"}${run.started_by ? ` · ${run.started_by.username}` : ""}`),
            el("a", { href: exportBase, download: "", class: "small", "data-sim-export": "json" }, "JSON"),
            el("a", { href: `${exportBase}csv/?table=components`, download: "", class: "small", "data-sim-export": "csv" }, "CSV"),
            el("a", { href: `${exportBase}csv/?table=series`, download: "", class: "small", "data-sim-export": "series" }, "series"),
          );
        }),
      );
    }
    this.#paintStatus();
  }

  #paintStatus() {
    const run = this.shown();
    const live = isActive(run);
    this.cancelButton.hidden = !live || !this.app.canEdit;
    this.faultForm.hidden = !live || !this.app.canEdit;
    if (live) this.#paintFaultTarget();
    const chip = this.chip;
    if (!run) {
      chip.hidden = true;
      chip.dataset.simStatus = "";
      this.ui.status.replaceChildren();
      return;
    }
    const fraction = run.progress?.fraction;
    const pct = run.status === "running" && typeof fraction === "number" ? ` ${formatPercent(fraction)}` : "";
    chip.hidden = false;
    chip.dataset.simStatus = run.status;
    chip.dataset.simRun = run.id;
    chip.textContent = `Simulation ${run.status}${pct}`;
    const e2e = (run.summary || run.progress)?.end_to_end || {};
    const parts = [`${run.status}${pct}`];
    if (typeof run.progress?.t === "number") parts.push(`t = ${Math.round(run.progress.t)} s`);
    if (typeof e2e.p99_ms === "number") parts.push(`p99 ${formatMs(e2e.p99_ms)}`);
    if (typeof e2e.success_rate === "number") parts.push(`success ${formatPercent(e2e.success_rate)}`);
    const bar = el("progress", { max: 1, value: run.status === "running" ? fraction || 0 : isActive(run) ? 0 : 1, class: "sim-progress" });
    this.ui.status.replaceChildren(el("p", { class: "small", "data-sim-summary": run.status }, parts.join(" · ")), bar);
    if (run.error) this.ui.status.append(el("p", { class: "small sim-error" }, run.error));
  }

  #paintCharts() {
    const run = this.shown();
    const charts = this.ui.charts;
    if (!run) {
      charts.replaceChildren();
      return;
    }
    let xs;
    let latency;
    let utilisation;
    const detail = this.details.get(run.id);
    const series = detail?.results?.time_series;
    if (series?.seconds?.length) {
      xs = series.seconds;
      latency = series.p99_ms || [];
      utilisation = Object.fromEntries(Object.entries(series.components || {}).map(([id, figures]) => [id, figures.utilisation || []]));
    } else if (run.history?.t.length) {
      xs = run.history.t;
      latency = run.history.p99;
      utilisation = run.history.utilisation;
    } else {
      charts.replaceChildren();
      return;
    }
    const top = Object.entries(utilisation)
      .map(([id, values]) => [id, values, Math.max(0, ...values.filter(Number.isFinite))])
      .filter(([, , peak]) => peak > 0)
      .sort((a, b) => b[2] - a[2])
      .slice(0, 3);
    const latencyPath = chartPath(latency, { ...CHART, xs });
    const utilMax = Math.max(1, ...top.map(([, , peak]) => peak));
    const chart = (title, paths, max, unit, name) => {
      const box = svg("svg", { viewBox: `0 0 ${CHART.width} ${CHART.height}`, class: "sim-chart", role: "img", "aria-label": title, "data-sim-chart": name });
      box.append(svg("line", { x1: 0, y1: CHART.height, x2: CHART.width, y2: CHART.height, class: "sim-axis", stroke: "#cbd5e1" }));
      for (const [index, d] of paths.entries()) if (d) box.append(svg("path", { d, class: `sim-series sim-series-${index}`, fill: "none", "stroke-width": 1.5 }));
      return el("figure", { class: "sim-figure" }, el("figcaption", { class: "small" }, `${title} (max ${unit(max)})`), box);
    };
    const legend = el("p", { class: "small sim-legend" }, ...top.map(([id], index) => el("span", { class: `sim-key sim-key-${index}` }, String(this.app.doc.get(id)?.text || id).split("\n")[0])));
    charts.replaceChildren(
      chart("p99 latency over time", [latencyPath.d], latencyPath.max, formatMs, "latency"),
      chart("utilisation over time", top.map(([, values]) => chartPath(values, { ...CHART, xs, max: utilMax }).d), utilMax, formatPercent, "utilisation"),
      legend,
    );
  }

  /** The engine's text names components by id (a uuid for those placed from the palette): their labels instead. */
  #named(text) {
    return String(text).replace(/'([^']{1,80})'/g, (quoted, id) => {
      const element = this.app.doc.get(id);
      const label = element?.type === "component" ? String(element.text || "").split("\n")[0].trim() : "";
      if (label && label !== id) return `'${label}'`;
      return /^[0-9a-f]{8}-[0-9a-f-]{27}$/.test(id) ? `'${id.slice(0, 8)}…'` : quoted;
    });
  }

  // --- drawing ---------------------------------------------------------------------------------

  #requestRender() {
    if (this.frameQueued) return;
    this.frameQueued = true;
    requestAnimationFrame(() => {
      this.frameQueued = false;
      this.render();
    });
  }

  render() {
    if (this.app.replaying) return;
    const run = this.shown();
    const figures = figuresOf(run);
    const problems = this.problems.map((problem) => ({ ...problem, message: this.#named(problem.message) }));
    this.overlay.render(this.app.doc, { problems, figures });
    const bottleneck = figures?.bottleneck;
    this.ui.bottleneck.hidden = !bottleneck;
    this.ui.bottleneck.textContent = bottleneck ? `${bottleneck.live ? "Now" : "Bottleneck"}: ${this.#named(bottleneck.explanation)}` : "";
    if (bottleneck) this.ui.bottleneck.dataset.component = bottleneck.component_id;
    this.#paintStatus();
    this.#paintCharts();
    this.app.container.dataset.simShown = run ? `${run.id}:${run.status}` : "";
  }
}
