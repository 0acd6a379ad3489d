// Export: SVG (the elements drawn by render.js's elementNode, standalone), PNG (that SVG drawn on a
// <canvas> through an <img> with a data: URL, which the page's img-src allows), and JSON (the
// server's rendering, GET /api/v1/boards/{id}/export/). Whole board or the selection.
import { expand } from "./geometry.js";
import { elementNode, FONT, svg, SVG_NS } from "./render.js";

const PADDING = 20;

/** A standalone <svg> of the elements `ids` (all when null) of `source`, with a white background. */
export function exportSvgElement(source, ids = null) {
  const chosen = ids ? source.sorted().filter((element) => ids.includes(element.id)) : source.sorted();
  const box = expand(source.boundsOf(chosen.map((element) => element.id)) || { x: 0, y: 0, w: 0, h: 0 }, PADDING);
  const width = Math.max(1, Math.ceil(box.w));
  const height = Math.max(1, Math.ceil(box.h));
  const root = svg("svg", { xmlns: SVG_NS, width, height, viewBox: `${box.x} ${box.y} ${width} ${height}` });
  root.append(svg("rect", { x: box.x, y: box.y, width, height, fill: "#ffffff" }));
  for (const element of chosen) {
    const node = elementNode(element, source.lookup);
    node.removeAttribute("class");
    for (const child of node.querySelectorAll("[class]")) child.removeAttribute("class");
    root.append(node);
  }
  root.setAttribute("font-family", FONT); // inherited by the text (render.js leaves it out)
  root.setAttribute("stroke-linejoin", "round");
  return { root, width, height, count: chosen.length };
}

export function exportSvgText(source, ids = null) {
  const { root, width, height, count } = exportSvgElement(source, ids);
  return { text: new XMLSerializer().serializeToString(root), width, height, count };
}

function utf8Base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** A PNG Blob of the SVG, at `scale` device pixels per board unit (capped to a sane canvas size). */
export async function exportPngBlob(source, ids = null, scale = 2) {
  const { text, width, height } = exportSvgText(source, ids);
  const factor = Math.max(0.05, Math.min(scale, 8192 / width, 8192 / height));
  const image = new Image();
  image.decoding = "sync";
  image.src = `data:image/svg+xml;base64,${utf8Base64(text)}`;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width * factor));
  canvas.height = Math.max(1, Math.round(height * factor));
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("PNG export failed"))), "image/png"),
  );
}

/** Offer a Blob as a download named `filename`. */
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function safeFilename(title) {
  return (String(title || "board").replace(/[^\w.-]+/g, "-").replace(/^-+|-+$/g, "") || "board").slice(0, 80);
}
