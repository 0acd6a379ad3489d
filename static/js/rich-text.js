// A message's formatted body: the HTML the server rendered from its Markdown subset and sanitised
// (messaging/formatting.py, markdown-it-py + nh3), inserted as it is. This is the one place the
// chat assigns innerHTML (tests/test_csp.py allows it here only), so it does not take the
// server's word alone: the markup is parsed inert (a <template>'s content runs no script and loads
// nothing) and then walked, keeping only the tags and attributes the server allows, http(s) and
// mailto links, each opening in a new tab without access to this page
// (static/js/tests/rich-text.test.js feeds it hostile markup).

const TAGS = new Set(["P", "BR", "STRONG", "EM", "CODE", "PRE", "A", "BLOCKQUOTE", "UL", "OL", "LI"]);
const ATTRIBUTES = { A: new Set(["href"]), OL: new Set(["start"]) };
const SAFE_URL = /^(?:https?:|mailto:)/i;
export const LINK_REL = "noopener noreferrer nofollow";

function clean(parent) {
  for (const node of [...parent.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE) continue;
    if (node.nodeType !== Node.ELEMENT_NODE || !TAGS.has(node.tagName)) {
      // Anything else keeps only its text (comments and the like, nothing).
      node.replaceWith(node.nodeType === Node.ELEMENT_NODE ? node.textContent : "");
      continue;
    }
    const allowed = ATTRIBUTES[node.tagName];
    for (const { name } of [...node.attributes]) if (!allowed || !allowed.has(name)) node.removeAttribute(name);
    if (node.tagName === "A") {
      if (!SAFE_URL.test(node.getAttribute("href") ?? "")) node.removeAttribute("href");
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", LINK_REL);
    }
    if (node.tagName === "OL" && !/^\d{1,9}$/.test(node.getAttribute("start") ?? "1")) node.removeAttribute("start");
    clean(node);
  }
}

/** The nodes of a message's server-rendered HTML, checked again against the allowlist. */
export function richText(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  clean(template.content);
  return template.content;
}
