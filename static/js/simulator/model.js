// The simulator's pure logic for the board (no DOM): the utilisation colour scale, traffic bands for
// the animated flow, number formats, chart paths, and the runs of a board as the socket and REST
// report them (RunTracker: progress merged at most once, newest first, with a short history for the
// live charts). Unit-tested in static/js/tests/simulator.test.js.

export const FLOW_BANDS = 4;
export const HISTORY_POINTS = 600;
export const HOT_UTILISATION = 0.85; // a live run's hottest component above this is shown as the bottleneck
const ACTIVE = new Set(["queued", "running"]);

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));
const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

/** A fill for a utilisation (0 green → 0.5 amber → 1 and above red); null for no figure. */
export function utilisationColour(utilisation) {
  if (!isNumber(utilisation)) return null;
  const u = clamp(utilisation, 0, 1);
  const hue = Math.round(130 * (1 - u));
  const light = Math.round(88 - 16 * u);
  return `hsl(${hue} 75% ${light}%)`;
}

/** A word for a utilisation (a class: sim-util-low/mid/high/over). */
export function utilisationBand(utilisation) {
  if (!isNumber(utilisation)) return "none";
  if (utilisation >= 1) return "over";
  if (utilisation >= HOT_UTILISATION) return "high";
  if (utilisation >= 0.5) return "mid";
  return "low";
}

/** The traffic band of a connector (0: none; 1..FLOW_BANDS, proportional to the busiest connector). */
export function trafficBand(rps, busiest) {
  if (!isNumber(rps) || rps <= 0 || !isNumber(busiest) || busiest <= 0) return 0;
  return clamp(Math.ceil((FLOW_BANDS * rps) / busiest), 1, FLOW_BANDS);
}

export function formatRps(rps) {
  if (!isNumber(rps)) return "–";
  if (rps >= 10000) return `${(rps / 1000).toFixed(rps >= 100000 ? 0 : 1)}k rps`;
  return `${Math.round(rps).toLocaleString("en")} rps`;
}

export function formatMs(ms) {
  if (!isNumber(ms)) return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10000 ? 0 : 1)} s`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

export function formatPercent(fraction) {
  return isNumber(fraction) ? `${Math.round(fraction * 100)}%` : "–";
}

/**
 * An SVG path through `values` (one per x step; null/NaN leave a gap) in a width × height box, y up,
 * scaled to `max` (default: the largest value). Returns {d, max}.
 */
export function chartPath(values, { width, height, max = null, xs = null } = {}) {
  const numbers = values.filter(isNumber);
  const top = isNumber(max) && max > 0 ? max : Math.max(0, ...numbers) || 1;
  const n = values.length;
  const xOf = (i) => {
    if (xs) {
      const first = xs[0];
      const span = xs[n - 1] - first || 1;
      return ((xs[i] - first) / span) * width;
    }
    return n > 1 ? (i / (n - 1)) * width : 0;
  };
  const round = (value) => Math.round(value * 10) / 10;
  let d = "";
  let pen = false;
  values.forEach((value, i) => {
    if (!isNumber(value)) {
      pen = false;
      return;
    }
    const y = height - (clamp(value, 0, top) / top) * height;
    d += `${pen ? "L" : "M"}${round(xOf(i))} ${round(y)}`;
    pen = true;
  });
  return { d, max: top };
}

/**
 * What to draw for a run: per component {utilisation, throughput_rps, p99_ms}, per connector {rps},
 * the bottleneck {component_id, explanation, saturated, live}. From the live progress while it runs,
 * from the summary once finished.
 */
export function figuresOf(run) {
  if (!run) return null;
  const source = run.summary || run.progress;
  if (!source) return null;
  const components = {};
  for (const [id, figures] of Object.entries(source.components || {})) {
    components[id] = {
      utilisation: isNumber(figures.utilisation) ? figures.utilisation : null,
      throughput_rps: isNumber(figures.throughput_rps) ? figures.throughput_rps : null,
      p99_ms: isNumber(figures.p99_ms) ? figures.p99_ms : null,
    };
  }
  const connectors = {};
  for (const [id, figures] of Object.entries(source.connectors || {})) {
    if (isNumber(figures?.rps)) connectors[id] = { rps: figures.rps };
  }
  let bottleneck = null;
  if (run.summary?.bottleneck?.component_id) {
    const b = run.summary.bottleneck;
    bottleneck = { component_id: b.component_id, explanation: b.explanation || "", saturated: Boolean(b.saturated), live: false };
  } else if (!run.summary) bottleneck = liveBottleneck(components);
  return { components, connectors, bottleneck, endToEnd: source.end_to_end || null };
}

/** While a run is live: its most utilised component, if it is above HOT_UTILISATION. */
export function liveBottleneck(components) {
  let best = null;
  for (const [id, figures] of Object.entries(components)) {
    if (isNumber(figures.utilisation) && (!best || figures.utilisation > best.utilisation)) best = { id, utilisation: figures.utilisation };
  }
  if (!best || best.utilisation < HOT_UTILISATION) return null;
  return {
    component_id: best.id,
    explanation: `'${best.id}' is at ${formatPercent(best.utilisation)} utilisation: it is saturating`,
    saturated: best.utilisation >= 1,
    live: true,
  };
}

/** The busiest connector's rps (for the flow bands). */
export function busiestConnector(figures) {
  return Math.max(0, ...Object.values(figures?.connectors || {}).map((c) => c.rps).filter(isNumber));
}

/**
 * A board's runs as they come in: REST lists and details, simulation.started / progress / fault /
 * finished frames, acks. Merging keeps each run's newest state (a progress older than the one held
 * is ignored: REST and the socket may race) and a history of the live figures for the charts.
 */
export class RunTracker {
  constructor() {
    this.runs = new Map(); // id -> run (the REST shape, plus `history`)
  }

  #history(run) {
    if (!run.history) run.history = { t: [], p99: [], throughput: [], utilisation: {} };
    return run.history;
  }

  #record(run, progress) {
    if (!progress || !isNumber(progress.t)) return;
    const history = this.#history(run);
    const last = history.t.length ? history.t[history.t.length - 1] : -Infinity;
    if (progress.t <= last) return;
    const index = history.t.length;
    history.t.push(progress.t);
    history.p99.push(isNumber(progress.end_to_end?.p99_ms) ? progress.end_to_end.p99_ms : null);
    history.throughput.push(isNumber(progress.end_to_end?.throughput_rps) ? progress.end_to_end.throughput_rps : null);
    for (const [id, figures] of Object.entries(progress.components || {})) {
      if (!isNumber(figures.utilisation)) continue;
      const series = (history.utilisation[id] ||= []);
      while (series.length < index) series.push(null);
      series.push(figures.utilisation);
    }
    if (history.t.length > HISTORY_POINTS) {
      const drop = history.t.length - HISTORY_POINTS;
      history.t.splice(0, drop);
      history.p99.splice(0, drop);
      history.throughput.splice(0, drop);
      for (const series of Object.values(history.utilisation)) series.splice(0, drop);
    }
  }

  /** A run from REST or a frame's `simulation` (any status). Returns the merged run. */
  upsert(data) {
    if (!data?.id) return null;
    const held = this.runs.get(data.id);
    if (!held) {
      const run = { ...data };
      this.runs.set(run.id, run);
      this.#record(run, run.progress);
      return run;
    }
    const finished = !ACTIVE.has(held.status);
    const heldT = held.progress?.t ?? -Infinity;
    const { progress, status, summary, ...rest } = data;
    for (const [key, value] of Object.entries(rest)) if (value !== undefined) held[key] = value;
    if (finished && ACTIVE.has(status)) return held; // an older copy of a finished run
    if (status && !(held.status === "running" && status === "queued")) held.status = status; // never backwards
    if (summary !== undefined && summary !== null) held.summary = summary;
    if (progress && (progress.t ?? -Infinity) >= heldT) {
      held.progress = progress;
      this.#record(held, progress);
    }
    return held;
  }

  /** simulation.progress {run, status, progress} */
  progress(frame) {
    const held = this.runs.get(frame.run);
    if (held && !ACTIVE.has(held.status)) return held; // a late frame after the end
    return this.upsert({ id: frame.run, board: frame.board, status: frame.status || "running", progress: frame.progress || undefined });
  }

  /** simulation.finished {run, status, error, summary, simulation} */
  finished(frame) {
    const run = this.upsert({ ...(frame.simulation || {}), id: frame.run, status: frame.status, summary: frame.summary, error: frame.error || "" });
    if (run) {
      run.status = frame.status;
      if (frame.summary) run.summary = frame.summary;
    }
    return run;
  }

  /** simulation.fault {run, fault, user} */
  fault(frame) {
    const run = this.runs.get(frame.run);
    if (!run) return null;
    run.faults = [...(run.faults || []), frame.fault];
    return run;
  }

  /** Newest first (created_at, then the order they came in). */
  list() {
    return [...this.runs.values()].sort((a, b) => String(b.created_at || "").localeCompare(String(a.created_at || "")));
  }

  /** The newest queued or running run, or null. */
  active() {
    return this.list().find((run) => ACTIVE.has(run.status)) || null;
  }
}

export const isActive = (run) => Boolean(run) && ACTIVE.has(run.status);
