// @mentions in the web client (docs/notifications.md): highlighting them in a message's body, and
// finding the "@name" being typed before the caret (mention-complete.js). The server decides who a
// message mentions (messaging/mentions.py) and sends them with the message (`mentions`,
// `mentions_room`); the client only marks those names, never guesses others.

// As on the server: what may precede the '@' (so "ana@example.com" mentions nobody) and what a
// name is made of (Python's Unicode \w, as Django's usernames); a trailing '.' ends a sentence,
// not a name.
const WORD = "\\p{L}\\p{M}\\p{N}_";
const MENTION = new RegExp(`(^|[^${WORD}@.+-])@([${WORD}.+-]+)`, "gu");
const TYPING = new RegExp(`(?:^|[^${WORD}@.+-])@([${WORD}.+-]*)$`, "u");
const NAME_REST = new RegExp(`^[${WORD}.+-]*\\s?`, "u");
const SKIP = "code, pre, a";

let reader; // the signed-in user, from the page's #me-data (undefined: not read yet)

function currentReader() {
  if (reader === undefined) {
    const data = document.getElementById("me-data");
    reader = data ? JSON.parse(data.textContent) : null;
  }
  return reader;
}

/** The name being typed just before `caret` in `text` ("@an|" -> {query: "an", start}), or null. */
export function mentionAt(text, caret) {
  const match = TYPING.exec(text.slice(0, caret));
  if (!match) return null;
  return { query: match[1], start: caret - match[1].length - 1 };
}

/** The text with `@query` (from `start`) replaced by "@username ", and the caret after it. */
export function completeMention(text, start, caret, username) {
  const inserted = `@${username} `;
  const rest = text.slice(caret).replace(NAME_REST, ""); // the rest of a name being edited
  return { text: text.slice(0, start) + inserted + rest, caret: start + inserted.length };
}

/**
 * Wrap the mentions of `message` in `root` (its formatted body) in <span class="mention">, those
 * of the reader `me` (the page's signed-in user unless given) and @room also "mention-me". Text in
 * code and links is left alone.
 */
export function highlightMentions(root, message, me = currentReader()) {
  const ids = new Map((message.mentions || []).map((user) => [user.username.toLowerCase(), user.id]));
  if (!ids.size && !message.mentions_room) return root;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement?.closest(SKIP) && node.data.includes("@")) texts.push(node);
  }
  for (const node of texts) {
    const parts = [];
    let last = 0;
    for (const match of node.data.matchAll(MENTION)) {
      const name = match[2].replace(/\.+$/, "");
      const key = name.toLowerCase();
      const room = key === "room" && message.mentions_room;
      if (!room && !ids.has(key)) continue;
      const at = match.index + match[1].length;
      parts.push(node.data.slice(last, at));
      const mine = room || ids.get(key) === me?.id;
      const span = document.createElement("span");
      span.className = mine ? "mention mention-me" : "mention";
      span.textContent = `@${name}`;
      if (!room) span.dataset.userId = ids.get(key);
      parts.push(span);
      last = at + name.length + 1;
    }
    if (!parts.length) continue;
    parts.push(node.data.slice(last));
    node.replaceWith(...parts.filter((part) => part !== ""));
  }
  return root;
}
