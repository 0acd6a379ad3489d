// The simulator's drawing on the board's canvas, in two layers of the board's viewport (so it pans
// and zooms with the board) and never in the document: under the elements, each component's
// utilisation colour; over them, a kind icon per component, design problems (badge + message),
// throughput / p99 / utilisation labels, the animated flow along connectors (a class per traffic
// band: CSS animates stroke-dashoffset) and the bottleneck's highlight. SVG attributes and classes
// only: no style attributes (the page's Content-Security-Policy).
import { linePoints, shapeBox } from "../board/geometry.js";
import { svg } from "../board/render.js";
import { busiestConnector, formatMs, formatPercent, formatRps, trafficBand, utilisationBand, utilisationColour } from "./model.js";

export const KIND_ICONS = {
  client: "M8 2.5a2.5 2.5 0 110 5 2.5 2.5 0 010-5zM3 14c0-3 2.2-4.5 5-4.5s5 1.5 5 4.5",
  dns: "M8 2a6 6 0 100 12A6 6 0 008 2zM2 8h12M8 2c2.2 2.2 2.2 9.8 0 12M8 2c-2.2 2.2-2.2 9.8 0 12",
  cdn: "M4.5 12.5h7a3 3 0 00.3-6A4 4 0 004 7.5a2.5 2.5 0 00.5 5z",
  load_balancer: "M2 8h4M6 8l6-4.5M6 8l6 4.5M6 8h6M12 3.5l1.5 0M12 12.5h1.5M12 8h1.5",
  api_gateway: "M8 2l5 2v4c0 3-2.2 5-5 6-2.8-1-5-3-5-6V4z",
  service: "M3 3h10v4H3zM3 9h10v4H3zM5 5h1M5 11h1",
  cache: "M9 2L4 9h4l-1 5 5-7H8z",
  database: "M3 4c0-1.1 2.2-2 5-2s5 .9 5 2v8c0 1.1-2.2 2-5 2s-5-.9-5-2zM3 4c0 1.1 2.2 2 5 2s5-.9 5-2",
  queue: "M2 5h12v6H2zM5 5v6M8 5v6M11 5v6",
  object_storage: "M3 4h10l-1.5 9h-7zM3 4c0-1 2.2-1.5 5-1.5s5 .5 5 1.5",
  external_api: "M6 10l4-4M5 7L3.5 8.5a2.1 2.1 0 003 3L8 10M11 9l1.5-1.5a2.1 2.1 0 00-3-3L8 6",
};

function text(attrs, content) {
  const node = svg("text", attrs);
  node.textContent = content;
  return node;
}

export class SimOverlay {
  /** view: the board's BoardView (its viewport and layers). */
  constructor(view) {
    this.under = svg("g", { class: "sim-under", "pointer-events": "none", "data-sim-under": "" });
    this.over = svg("g", { class: "sim-over", "pointer-events": "none", "data-sim-over": "" });
    view.layers.elements.before(this.under);
    view.layers.elements.after(this.over);
  }

  hide(hidden) {
    this.under.toggleAttribute("hidden", hidden);
    this.over.toggleAttribute("hidden", hidden);
    this.under.setAttribute("visibility", hidden ? "hidden" : "visible");
    this.over.setAttribute("visibility", hidden ? "hidden" : "visible");
  }

  /**
   * source: the board document (sorted(), lookup); problems: [{element_id, message, severity}];
   * figures: figuresOf(run) or null.
   */
  render(source, { problems = [], figures = null } = {}) {
    const under = [];
    const over = [];
    const flows = [];
    const labels = [];
    const elements = source ? source.sorted() : [];
    const busiest = busiestConnector(figures);
    const byElement = new Map();
    for (const problem of problems) {
      if (problem.element_id) byElement.set(problem.element_id, [...(byElement.get(problem.element_id) || []), problem]);
    }
    for (const element of elements) {
      if (element.type === "component") {
        const box = shapeBox(element);
        const icon = KIND_ICONS[element.kind];
        if (icon) {
          over.push(
            svg("path", { d: icon, class: "sim-icon", transform: `translate(${box.x + 6} ${box.y + 6})`, fill: "none", stroke: "#475569", "stroke-width": 1.3, "stroke-linecap": "round", "stroke-linejoin": "round", "data-sim-icon": element.kind }),
          );
        }
        const own = figures?.components?.[element.id];
        if (own) {
          const colour = utilisationColour(own.utilisation);
          if (colour) under.push(svg("rect", { x: box.x, y: box.y, width: box.w, height: box.h, rx: 4, fill: colour, class: `sim-heat sim-util-${utilisationBand(own.utilisation)}`, "data-sim-heat": element.id }));
          const parts = [];
          if (own.throughput_rps !== null) parts.push(formatRps(own.throughput_rps));
          if (own.p99_ms !== null) parts.push(`p99 ${formatMs(own.p99_ms)}`);
          if (own.utilisation !== null) parts.push(formatPercent(own.utilisation));
          if (parts.length) labels.push(text({ x: box.x + box.w / 2, y: box.y + box.h + 14, "font-size": 12, "text-anchor": "middle", class: "sim-label", "data-sim-label": element.id }, parts.join(" · ")));
        }
        if (figures?.bottleneck?.component_id === element.id) {
          const b = figures.bottleneck;
          over.push(svg("rect", { x: box.x - 6, y: box.y - 6, width: box.w + 12, height: box.h + 12, rx: 8, fill: "none", stroke: "#dc2626", "stroke-width": 3, class: "sim-bottleneck", "data-sim-bottleneck": element.id }));
          labels.push(text({ x: box.x, y: box.y - 12, "font-size": 12, class: "sim-bottleneck-tag", fill: "#b91c1c", "font-weight": 600 }, b.saturated ? "Bottleneck: saturated" : b.live ? "Bottleneck (live)" : "Bottleneck"));
        }
      } else if (element.type === "arrow") {
        const rps = figures?.connectors?.[element.id]?.rps;
        const band = trafficBand(rps, busiest);
        if (band) {
          const [x1, y1, x2, y2] = linePoints(element, source.lookup);
          if ([x1, y1, x2, y2].every(Number.isFinite)) {
            flows.push(svg("line", { x1, y1, x2, y2, class: `sim-flow sim-flow-${band}`, stroke: "#2563eb", "stroke-width": 1 + band, "stroke-dasharray": "6 10", "stroke-linecap": "round", "data-sim-flow": element.id, "data-band": band }));
            labels.push(text({ x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, "font-size": 11, "text-anchor": "middle", class: "sim-label sim-label-connector", "data-sim-label": element.id }, formatRps(rps)));
          }
        }
      }
      const found = byElement.get(element.id);
      if (found && (element.type === "component" || element.type === "arrow")) {
        let x;
        let y;
        if (element.type === "component") {
          const box = shapeBox(element);
          x = box.x + box.w;
          y = box.y;
        } else {
          const points = linePoints(element, source.lookup);
          x = points[points.length - 2];
          y = points[points.length - 1];
        }
        const severity = found.some((p) => p.severity === "error") ? "error" : "warning";
        over.push(
          svg(
            "g",
            { transform: `translate(${x} ${y})`, class: `sim-problem sim-problem-${severity}`, "data-sim-problem": element.id },
            svg("circle", { r: 9, fill: severity === "error" ? "#dc2626" : "#d97706" }),
            text({ x: 0, y: 4, "font-size": 12, "text-anchor": "middle", fill: "#fff", "font-weight": 700 }, "!"),
            text({ x: 13, y: 4, "font-size": 12, fill: severity === "error" ? "#b91c1c" : "#92400e", class: "sim-problem-text" }, found.map((p) => p.message).join("; ")),
          ),
        );
      }
    }
    this.under.replaceChildren(...under);
    this.over.replaceChildren(...flows, ...over, ...labels);
  }
}
