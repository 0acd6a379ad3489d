// Reactions under a message (docs/protocol.md "Threads and reactions"): chips with their counts
// and who reacted, which toggle the reader's own reaction, and a small picker (a quick set, or any
// single emoji typed in; the server validates it). Changes go as reaction.add / reaction.remove
// frames and come back as the message's next copy (reaction.ack, message.update): nothing here
// changes a message by itself. User content only reaches the DOM through textContent (dom.js `el`).
import { el } from "./dom.js";

// The picker's quick set: messaging/emoji.py QUICK, in its order.
export const QUICK = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀", "✅", "👎"];

/** Does `me` have a reaction `emoji` on `message`? */
export function hasReacted(message, emoji, me) {
  const entry = (message.reactions || []).find((reaction) => reaction.emoji === emoji);
  return Boolean(entry && entry.users.some((user) => user.id === me.id));
}

/** The frame that toggles `me`'s `emoji` reaction on `message`. */
export function toggleFrame(roomId, message, emoji, me) {
  const type = hasReacted(message, emoji, me) ? "reaction.remove" : "reaction.add";
  return { type, room: roomId, id: message.id, emoji };
}

/**
 * The chips of a message's reactions (null when it has none). `canReact`: clicking toggles.
 * `nameOf(user)`: how a reactor is named (the page passes the member list's display names; the
 * reactions themselves carry only {id, username}); the username when it has none.
 */
export function reactionChips(message, me, canReact, nameOf = (user) => user.username) {
  const reactions = message.deleted ? [] : message.reactions || [];
  if (!reactions.length) return null;
  return el(
    "div",
    { class: "reactions", role: "group", "aria-label": "Reactions" },
    ...reactions.map((reaction) => {
      const mine = reaction.users.some((user) => user.id === me.id);
      const names = reaction.users.map((user) => (user.id === me.id ? "you" : nameOf(user) || user.username)).join(", ");
      return el(
        "button",
        {
          type: "button",
          class: mine ? "reaction-chip is-mine" : "reaction-chip",
          "data-action": "react-toggle",
          "data-emoji": reaction.emoji,
          "aria-pressed": mine ? "true" : "false",
          "aria-label": `${reaction.emoji} ${reaction.count}: ${names}`,
          title: `${names} reacted with ${reaction.emoji}`,
          disabled: !canReact,
        },
        el("span", { class: "reaction-emoji", "aria-hidden": "true" }, reaction.emoji),
        el("span", { class: "reaction-count", "aria-hidden": "true" }, String(reaction.count)),
      );
    }),
  );
}

/**
 * The emoji picker: one popover at a time, under the message row it was opened for. onPick(id,
 * emoji) is called with the message id and the chosen emoji; it closes on a pick, Escape, or a
 * click elsewhere.
 */
export class ReactionPicker {
  #node = null;
  #messageId = null;
  #onPick;

  constructor({ onPick }) {
    this.#onPick = onPick;
    document.addEventListener("pointerdown", (event) => {
      if (this.#node && !this.#node.contains(event.target) && !event.target.closest?.("[data-action=react-pick]")) {
        this.close();
      }
    });
  }

  get openFor() {
    return this.#messageId;
  }

  /** Open under `row` (a message <li>) for message `id`; a second click on the same one closes it. */
  toggle(row, id) {
    if (this.#messageId === id) {
      this.close();
      return;
    }
    this.close();
    this.#messageId = id;
    const other = el("input", {
      class: "reaction-picker-input",
      name: "emoji",
      maxLength: 32,
      autocomplete: "off",
      placeholder: "Any emoji",
      "aria-label": "Any emoji",
    });
    const form = el(
      "form",
      { class: "reaction-picker-other" },
      other,
      el("button", { type: "submit", class: "btn btn-secondary btn-xs" }, "Add"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const emoji = other.value.trim();
      if (emoji) this.#pick(emoji);
    });
    const quick = el(
      "div",
      { class: "reaction-picker-quick" },
      ...QUICK.map((emoji) =>
        el("button", { type: "button", class: "reaction-pick", "data-emoji": emoji, "aria-label": `React with ${emoji}` }, emoji),
      ),
    );
    quick.addEventListener("click", (event) => {
      const button = event.target.closest("[data-emoji]");
      if (button) this.#pick(button.dataset.emoji);
    });
    this.#node = el("div", { class: "reaction-picker", role: "dialog", "aria-label": "Add a reaction" }, quick, form);
    this.#node.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        this.close();
      }
    });
    (row.querySelector(".msg-main") || row).append(this.#node);
    quick.querySelector("button")?.focus();
  }

  close() {
    this.#node?.remove();
    this.#node = null;
    this.#messageId = null;
  }

  #pick(emoji) {
    const id = this.#messageId;
    this.close();
    this.#onPick(id, emoji);
  }
}
