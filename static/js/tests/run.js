// Runs every test module listed here and shows the results on the page; tests/test_js_units.py
// reads them from window.parleyTests (a promise of [{name, ok, error}]).
import { runAll } from "./harness.js";
import "./timeline.test.js";
import "./sidebar.test.js";
import "./members.test.js";
import "./board-geometry.test.js";
import "./board-outbox.test.js";
import "./board-doc.test.js";
import "./board-render.test.js";
import "./simulator.test.js";
import "./transports.test.js";
import "./shared.test.js";
import "./rich-text.test.js";
import "./attachments.test.js";
import "./mentions.test.js";

window.parleyTests = runAll().then((results) => {
  const list = document.getElementById("results");
  for (const { name, ok, error } of results) {
    const item = document.createElement("li");
    item.className = ok ? "pass" : "fail";
    item.textContent = ok ? `✓ ${name}` : `✗ ${name}: ${error}`;
    list.append(item);
  }
  document.getElementById("summary").textContent =
    `${results.filter((result) => result.ok).length} of ${results.length} passed`;
  return results;
});
