// The rows of the message list: how one message is drawn, grouped with its neighbours, and kept
// in the <ol> in the order the timeline (timeline.js) says. It is the timeline's `view`; the
// other modules reach a row through `node(id)`. User content only reaches the DOM through
// textContent (see dom.js `el`), or as the server's sanitised formatting through rich-text.js.
import { avatar, displayName, el, lineIcon } from "./dom.js";
import { dayLabel, hhmm } from "./format.js";
import { reactionChips } from "./reactions.js";
import { renderAttachments } from "./attachments.js";
import { threadLine } from "./thread-line.js";
import { highlightMentions } from "./mentions.js";
import { richText } from "./rich-text.js";
import { RowFocus } from "./row-focus.js";

const GROUP_WINDOW_MS = 5 * 60 * 1000; // consecutive messages by one person within this are grouped
const ROW_ERROR_MS = 6000;
// Long messages are folded to a few lines with "Show more" (app.css .msg-body.is-collapsed); one
// this long in characters or lines may be taller than that, and is measured once drawn.
const FOLD_CHARS = 600;
const FOLD_LINES = 10;

function mayFold(message) {
  const text = message.deleted ? "" : message.content || "";
  return text.length > FOLD_CHARS || text.split("\n").length > FOLD_LINES;
}

const ICONS = {
  edit: ["M10.2 3.2l2.6 2.6", "M11.3 2.1a1.3 1.3 0 0 1 1.9 0l.7.7a1.3 1.3 0 0 1 0 1.9L6.2 12.4 2.8 13.2l.8-3.4Z"],
  delete: ["M2.8 4.3h10.4", "M6.3 4.3V2.8h3.4v1.5", "M4.3 4.3l.7 9h6l.7-9", "M6.8 6.8v4M9.2 6.8v4"],
  seen: ["M1.5 8.6l3 3L11 4.6", "M7.4 11.1l.5.5 6.6-7"],
  reply: ["M6.5 3.5L2.5 7.5l4 4", "M2.8 7.5h6.7a4 4 0 0 1 4 4v1"],
  react: ["M8 14.2A6.2 6.2 0 1 0 8 1.8a6.2 6.2 0 0 0 0 12.4Z", "M5.5 9.6a3 3 0 0 0 5 0", "M6 6.2h.01M10 6.2h.01"],
};

const NOBODY_MAY = { edit: false, remove: false, receipts: false, reply: false, react: false };

function actionButton(action, label, icon) {
  return el(
    "button",
    { type: "button", class: `msg-action msg-action-${action}`, "data-action": action, "aria-label": label, title: label },
    lineIcon(...icon),
  );
}

function renderActions(can) {
  if (!can.edit && !can.remove && !can.receipts && !can.reply && !can.react) return null;
  return el(
    "div",
    { class: "msg-actions", role: "toolbar", "aria-label": "Message actions" },
    can.react && actionButton("react-pick", "Add reaction", ICONS.react),
    can.reply && actionButton("thread", "Reply in thread", ICONS.reply),
    can.receipts && actionButton("receipts", "Seen by", ICONS.seen),
    can.edit && actionButton("edit", "Edit message", ICONS.edit),
    can.remove && actionButton("delete", "Delete message", ICONS.delete),
  );
}

function editedMark(editedAt) {
  return el("span", { class: "msg-edited", title: `Edited ${new Date(editedAt).toLocaleString()}` }, " (edited)");
}

/** An end-to-end encrypted room's message (docs/e2ee.md): the notice that turned it on, or an
 * envelope opened here by `open(message)` (e2ee.js Sealer) and shown as plain text (no Markdown:
 * the server never saw the text to format it). */
function sealedBody(message, open) {
  if (message.e2ee.kind === "enabled") {
    const who = message.sender ? displayName(message.sender) : "Someone";
    return el("div", { class: "msg-body msg-e2ee-notice" }, `🔒 ${who} turned on end-to-end encryption.`);
  }
  if (message.e2ee.kind !== "message" || !open) {
    return el("div", { class: "msg-body msg-e2ee", "data-e2ee": "failed" }, "🔒 Encrypted message");
  }
  const body = el("div", { class: "msg-body msg-e2ee", "data-e2ee": "pending" }, "🔒 Decrypting…");
  open(message).then(
    (text) => {
      body.textContent = text;
      body.dataset.e2ee = "open";
    },
    (error) => {
      body.textContent = `🔒 Can't decrypt this message: ${error.message}`;
      body.dataset.e2ee = "failed";
    },
  );
  return body;
}

function renderBody(message, open) {
  if (message.deleted) return el("div", { class: "msg-body msg-deleted" }, "This message was deleted.");
  if (message.e2ee) return sealedBody(message, open);
  // The server's formatting (`html`, rich-text.js); a copy without it (an edit being saved) as text.
  if (!message.html) return el("div", { class: "msg-body" }, message.content, message.edited_at && editedMark(message.edited_at));
  const body = el("div", { class: "msg-body msg-rich" }, highlightMentions(richText(message.html), message));
  const last = body.lastElementChild;
  if (message.edited_at) (last && last.tagName === "P" ? last : body).append(editedMark(message.edited_at));
  return body;
}

/**
 * Group a row with the one above it (same sender, same day, within a few minutes): the row
 * then hides its avatar and name, like chat apps do. A new day gets a date divider (CSS reads
 * data-day). Called for a new row and the row after it, since an insertion can split a group.
 */
function applyGrouping(node) {
  if (!node) return;
  const prev = node.previousElementSibling;
  const newDay = !prev || prev.dataset.day !== node.dataset.day;
  const sameSender = prev && node.dataset.sender !== "" && prev.dataset.sender === node.dataset.sender;
  const close = prev && Number(node.dataset.time) - Number(prev.dataset.time) < GROUP_WINDOW_MS;
  node.classList.toggle("is-new-day", newDay);
  node.classList.toggle("is-continuation", Boolean(!newDay && sameSender && close));
}

export class MessageRows {
  #list;
  #me;
  #can;
  #onUpdate;
  #threadLinks;
  #nameOf;
  #open;
  #nodes = new Map(); // message id -> <li>
  #unfolded = new Set(); // ids of long messages the reader opened with "Show more"
  #toMeasure = new Set(); // folded bodies drawn since the last frame

  /**
   * list: the <ol>. me: {id, username}. can(message): {edit, remove, receipts, reply, react}, what the reader
   * may do with it now (the row offers those actions). onUpdate(message): a newer copy arrived;
   * return false to leave the row as it is (an editor is open in it). nameOf(user): a user's
   * display name for the reactions' tooltips (reactions.js). open(message): the text of an end-to-end
   * encrypted message, a Promise (e2ee.js Sealer.open); null where there is none.
   */
  constructor(
    list,
    { me, can = () => NOBODY_MAY, onUpdate = () => true, threadLinks = true, nameOf = undefined, open = null },
  ) {
    this.#threadLinks = threadLinks; // the thread line under rows (not in the thread panel itself)
    this.#nameOf = nameOf;
    this.#open = open;
    this.#list = list;
    new RowFocus(list); // one tab stop for the list; a row's actions are tab stops only while it has focus
    this.#me = me;
    this.#can = can;
    this.#onUpdate = onUpdate;
    list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-fold]");
      const row = button?.closest(".msg[data-id]");
      if (row) this.#toggleFold(row, button);
    });
  }

  #foldButton(open) {
    return el(
      "button",
      { type: "button", class: "msg-fold", "data-fold": true, "aria-expanded": String(open) },
      open ? "Show less" : "Show more",
    );
  }

  #toggleFold(row, button) {
    const open = !this.#unfolded.has(row.dataset.id);
    if (open) this.#unfolded.add(row.dataset.id);
    else this.#unfolded.delete(row.dataset.id);
    row.querySelector(".msg-body")?.classList.toggle("is-collapsed", !open);
    button.replaceWith(this.#foldButton(open));
    row.querySelector("[data-fold]")?.focus();
  }

  /** Unfold what turned out to fit (a long line of few words, a wide screen), in one layout pass. */
  #measureSoon(body) {
    if (!this.#toMeasure.size) {
      requestAnimationFrame(() => {
        for (const node of this.#toMeasure) {
          if (node.isConnected && node.scrollHeight <= node.clientHeight + 2) {
            node.classList.remove("is-collapsed");
            node.parentElement?.querySelector(":scope > [data-fold]")?.remove();
          }
        }
        this.#toMeasure.clear();
      });
    }
    this.#toMeasure.add(body);
  }

  isMine(message) {
    return Boolean(message.sender && message.sender.id === this.#me.id);
  }

  node(id) {
    return this.#nodes.get(id) ?? null;
  }

  render(message) {
    const created = new Date(message.created_at);
    const sender = message.sender; // null if the account was deleted
    const body = renderBody(message, this.#open);
    const fold = mayFold(message);
    if (fold && !this.#unfolded.has(message.id)) {
      body.classList.add("is-collapsed");
      this.#measureSoon(body);
    }
    return el(
      "li",
      {
        class: this.isMine(message) ? "msg msg-mine" : "msg",
        "data-sequence": message.sequence,
        "data-id": message.id,
        "data-sender": sender ? sender.id : "",
        "data-time": created.getTime(),
        "data-day": dayLabel(created),
        "data-deleted": message.deleted ? "true" : null,
      },
      avatar(sender),
      el(
        "div",
        { class: "msg-main" },
        el(
          "div",
          { class: "msg-meta" },
          el("span", { class: "msg-author", title: sender ? `@${sender.username}` : null }, sender ? displayName(sender) : "Deleted user"),
          el("time", { class: "msg-time", dateTime: message.created_at, title: created.toLocaleString() }, hhmm(created)),
        ),
        body,
        fold && this.#foldButton(this.#unfolded.has(message.id)),
        renderAttachments(message),
        this.#threadLinks && threadLine(message),
        reactionChips(message, this.#me, this.#can(message).react, this.#nameOf),
      ),
      renderActions(this.#can(message)),
    );
  }

  // The timeline's view -----------------------------------------------------------------------

  insert(message, next) {
    const node = this.render(message);
    this.#list.insertBefore(node, next ? this.#nodes.get(next.id) : null);
    this.#nodes.set(message.id, node);
    applyGrouping(node);
    applyGrouping(node.nextElementSibling);
  }

  update(message) {
    if (this.#onUpdate(message) !== false) this.draw(message);
  }

  // For the other modules ---------------------------------------------------------------------

  /** Draw a row again from its message (or from `shown`, an optimistic copy of it). */
  draw(message, shown = message) {
    const old = this.#nodes.get(message.id);
    if (!old) return null;
    const node = this.render(shown);
    old.replaceWith(node);
    this.#nodes.set(message.id, node);
    applyGrouping(node);
    applyGrouping(node.nextElementSibling);
    return node;
  }

  /** A user.profile: `user`'s new name or picture. Of `messages` (the module's copies), those
   * they sent take it and are drawn again, and so are those they reacted to (the chips' tooltips
   * name reactors by the member list's names); a row being edited is left as it is. */
  onProfile(user, messages) {
    for (const message of messages) {
      if (!this.#nodes.has(message.id)) continue;
      const sent = message.sender?.id === user.id;
      if (sent) message.sender = user;
      if (sent || message.reactions?.some((reaction) => reaction.users.some((who) => who.id === user.id))) {
        this.update(message);
      }
    }
  }

  /** The reader's role changed: redraw what each row offers. */
  refreshActions(messages) {
    for (const message of messages) {
      const node = this.#nodes.get(message.id);
      if (!node) continue;
      const old = node.querySelector(":scope > .msg-actions");
      const fresh = renderActions(this.#can(message));
      if (old && fresh) old.replaceWith(fresh);
      else if (old) old.remove();
      else if (fresh) node.append(fresh);
    }
  }

  /** A short-lived error line under a row ("Couldn't edit this message: …"). */
  showError(id, text) {
    const line = el("p", { class: "msg-row-error", role: "alert" }, text);
    this.#nodes.get(id)?.querySelector(".msg-main")?.append(line);
    setTimeout(() => line.remove(), ROW_ERROR_MS);
  }

  /** The message id of the row an event happened in, and the action button it hit (if any). */
  actionAt(target) {
    const button = target.closest("[data-action]");
    const row = button?.closest(".msg[data-id]");
    return row && this.#nodes.has(row.dataset.id) ? { id: row.dataset.id, action: button.dataset.action } : null;
  }

  /** The sequence of the lowest row whose top is above `bottom` (a viewport y), or 0. */
  lastSequenceAbove(bottom) {
    for (let node = this.#list.lastElementChild; node; node = node.previousElementSibling) {
      if (node.getBoundingClientRect().top < bottom) return Number(node.dataset.sequence);
    }
    return 0;
  }
}
