// The thread line under a message row (docs/protocol.md "Threads and reactions"): on a root with
// replies, "3 replies · last 10:42", which opens the thread panel (threads.js); on a reply, a link
// to its thread. Both are buttons with data-action="thread" (chat.js handles the click).
import { el } from "./dom.js";
import { hhmm } from "./format.js";

/** The "3 replies · last 10:42" button under a root with replies; a reply's "in a thread" link. */
export function threadLine(message) {
  if (message.deleted && !message.reply_count) return null;
  if (message.reply_to) {
    return el("button", { type: "button", class: "thread-ref", "data-action": "thread" }, "↳ reply in a thread");
  }
  if (!message.reply_count) return null;
  const count = message.reply_count === 1 ? "1 reply" : `${message.reply_count} replies`;
  const last = message.last_reply_at ? new Date(message.last_reply_at) : null;
  return el(
    "button",
    { type: "button", class: "thread-summary", "data-action": "thread", "aria-label": `${count}: open the thread` },
    el("span", { class: "thread-count" }, count),
    last && el("span", { class: "thread-last" }, `· last ${hhmm(last)}`),
  );
}
