// The board's markup (static/js/board/render.js draws elements from escaped markup in one parse,
// the one place the web client assigns innerHTML; tests/test_csp.py allows it there only): hostile
// values from the shared document never become elements, attributes, handlers or styles.
import { elementMarkup, elementNode, fillElementNode } from "../board/render.js";
import { assert, assertEqual, test } from "./harness.js";

const HOSTILE = `"'><script>alert(1)</script><img src=x onerror=alert(2)>&amp;`;

function parse(markup) {
  const doc = new DOMParser().parseFromString(
    `<svg xmlns="http://www.w3.org/2000/svg">${markup}</svg>`,
    "image/svg+xml",
  );
  assert(!doc.querySelector("parsererror"), `well-formed: ${markup.slice(0, 200)}`);
  return doc.documentElement;
}

test("board: hostile values in the document stay text in the markup", () => {
  const elements = [
    { id: HOSTILE, type: "rect", x: 0, y: 0, w: 100, h: 50, z: HOSTILE, stroke: HOSTILE, fill: HOSTILE, text: HOSTILE },
    { id: "s", type: "sticky", x: 0, y: 0, w: 100, h: 100, z: "a", fill: `red" style="x`, text: `${HOSTILE}\n${HOSTILE}` },
    { id: "t", type: "text", x: 0, y: 0, w: 100, h: 20, z: "b", text: HOSTILE, fontSize: `1" onload="x` },
    { id: "p", type: "pen", x: 0, y: 0, w: 10, h: 10, z: "c", points: [0, 0, `5" onload="x`, 5] },
    { id: "a", type: "arrow", x: 0, y: 0, w: 10, h: 10, z: "d", points: [0, 0, 10, 10], from: HOSTILE, to: null },
  ];
  for (const element of elements) {
    const root = parse(elementMarkup(element, () => null));
    const all = [...root.querySelectorAll("*")];
    const names = new Set(all.map((node) => node.localName));
    assert(!names.has("script") && !names.has("img") && !names.has("foreignObject"), `no injected elements: ${[...names]}`);
    for (const node of all) {
      for (const attribute of node.attributes) {
        assert(!/^on/i.test(attribute.name), `no handler attribute: ${attribute.name}`);
        assertEqual(attribute.name === "style", false, "no style attribute");
      }
    }
    const group = root.firstElementChild;
    assertEqual(group.getAttribute("data-id"), element.id, "the id round-trips as text");
  }
});

test("board: a turned shape's group carries its rotation, in the markup and the node", () => {
  const turned = { id: "t", type: "rect", x: 0, y: 0, w: 100, h: 50, z: "a", angle: 30 };
  const node = parse(elementMarkup(turned, () => null)).querySelector("g");
  assertEqual(node.getAttribute("transform"), "rotate(30 50 25)", "rotated about its centre");
  const flat = parse(elementMarkup({ ...turned, angle: 0 }, () => null)).querySelector("g");
  assertEqual(flat.getAttribute("transform"), null, "no transform when not turned");
  const live = elementNode(turned, () => null);
  assertEqual(live.getAttribute("transform"), "rotate(30 50 25)", "the live/exported node too");
  fillElementNode(live, { ...turned, angle: 0 }, () => null);
  assertEqual(live.getAttribute("transform"), null, "turning back removes it");
});
