// Message bodies (static/js/rich-text.js): the server's formatted HTML is shown as it is, and
// markup the server should never send is cut down to the allowlist all the same.
import { LINK_REL, richText } from "../rich-text.js";
import { assert, assertEqual, test } from "./harness.js";

const holder = (html) => {
  const div = document.createElement("div");
  div.append(richText(html));
  return div;
};

test("rich text: the server's formatting is kept", () => {
  const html =
    '<p><strong>b</strong> <em>i</em> <code>c</code> <a href="https://example.com" target="_blank" rel="noopener noreferrer nofollow">l</a></p>\n' +
    '<blockquote>\n<p>q</p>\n</blockquote>\n<ul>\n<li>x</li>\n</ul>\n<ol start="3">\n<li>y</li>\n</ol>\n<pre><code>z\n</code></pre>';
  assertEqual(holder(html).innerHTML, html);
});

test("rich text: hostile markup never becomes elements, handlers or script links", () => {
  const div = holder(
    '<p onclick="alert(1)" style="color:red">t<script>alert(2)</script><img src=x onerror="alert(3)">' +
      '<a href="javascript:alert(4)" onmouseover="alert(5)">j</a><a href=" data:text/html,x">d</a>' +
      '<iframe src="https://evil.example"></iframe><svg><a href="https://x">s</a></svg><!-- c --></p>' +
      '<ol start="1 onclick"><li>o</li></ol>',
  );
  const names = [...div.querySelectorAll("*")].map((node) => node.localName);
  assertEqual(names, ["p", "a", "a", "ol", "li"]);
  for (const node of div.querySelectorAll("*")) {
    for (const { name } of node.attributes) assert(["href", "start", "target", "rel"].includes(name), `attribute ${name}`);
  }
  const links = [...div.querySelectorAll("a")];
  assert(links.every((link) => !link.hasAttribute("href")), "no javascript: or data: link survives");
  assert(links.every((link) => link.rel === LINK_REL && link.target === "_blank"), "links open safely");
  assert(!div.querySelector("ol").hasAttribute("start"), "a bad start is dropped");
  assertEqual(div.textContent, "talert(2)jdso");
});
