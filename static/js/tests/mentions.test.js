// @mentions in the client (static/js/mentions.js, mention-complete.js): only the names the server
// listed are highlighted (the reader's own differently), never inside code or links; the name
// being typed is found before the caret and completed in place; candidates are matched by prefix
// first.
import { completeMention, highlightMentions, mentionAt } from "../mentions.js";
import { matchPeople } from "../mention-complete.js";
import { richText } from "../rich-text.js";
import { assertEqual, test } from "./harness.js";

const ME = { id: 2, username: "bo" };

function highlighted(html, message) {
  const div = document.createElement("div");
  div.append(highlightMentions(richText(html), message, ME));
  return div;
}

test("mentions: the listed names are marked, mine differently, code and links left alone", () => {
  const message = { mentions: [{ id: 1, username: "Ana" }, { id: 2, username: "bo" }], mentions_room: false };
  const div = highlighted(
    "<p>hi @ana, @BO. and @cy and @room</p><p><code>@ana</code> <a href=\"https://x\">@ana</a> a@ana</p>",
    message,
  );
  const marks = [...div.querySelectorAll(".mention")].map((node) => [node.textContent, node.className]);
  assertEqual(marks, [
    ["@ana", "mention"],
    ["@BO", "mention mention-me"],
  ]);
  assertEqual(div.querySelector("p").textContent, "hi @ana, @BO. and @cy and @room");
});

test("mentions: names outside ASCII are whole names, as on the server", () => {
  const div = highlighted("<p>merci @josé!</p>", { mentions: [{ id: 3, username: "José" }], mentions_room: false });
  assertEqual(div.querySelector(".mention")?.textContent, "@josé");
  assertEqual(mentionAt("hé @jos", 7), { query: "jos", start: 3 });
});

test("mentions: @room is marked only when the server says it counts", () => {
  const text = "<p>all of you @room</p>";
  assertEqual(highlighted(text, { mentions: [], mentions_room: false }).querySelectorAll(".mention").length, 0);
  const marked = highlighted(text, { mentions: [], mentions_room: true }).querySelector(".mention-me");
  assertEqual(marked.textContent, "@room");
});

test("mentions: the name being typed is found before the caret and completed in place", () => {
  assertEqual(mentionAt("hello @an", 9), { query: "an", start: 6 });
  assertEqual(mentionAt("hello @", 7), { query: "", start: 6 });
  assertEqual(mentionAt("mail ana@ex", 11), null);
  assertEqual(mentionAt("hello @an there", 15), null);
  assertEqual(completeMention("hi @an!", 3, 6, "ana"), { text: "hi @ana !", caret: 8 });
  assertEqual(completeMention("hi @anxx rest", 3, 6, "ana"), { text: "hi @ana rest", caret: 8 });
});

test("mentions: candidates starting with what is typed come first, then those containing it", () => {
  const people = [{ username: "dana" }, { username: "Ana" }, { username: "bob" }, { username: "anton" }];
  assertEqual(
    matchPeople(people, "an").map((person) => person.username),
    ["Ana", "anton", "dana"],
  );
  assertEqual(matchPeople(people, "").length, 4);
});
