// Completing "@name" in a composer from the room's members (docs/notifications.md).
//
// The textarea keeps the focus: the suggestions are a listbox it controls, the active one named by
// aria-activedescendant (WAI-ARIA's combobox pattern, without changing the textarea's role).
// ArrowDown/ArrowUp move, Enter or Tab take the active one, Escape closes; a click takes one too.
// While the list is open these keys are its own: the composer does not send on that Enter.
import { el } from "./dom.js";
import { completeMention, mentionAt } from "./mentions.js";

const MAX_SHOWN = 8;
let lists = 0; // ids of listboxes on the page

/**
 * The candidates for `query` among `people` ([{username, label?}]): names starting with it first,
 * then names containing it, each group in the order given; at most MAX_SHOWN.
 */
export function matchPeople(people, query) {
  const wanted = query.toLowerCase();
  const starts = [];
  const contains = [];
  for (const person of people) {
    const name = person.username.toLowerCase();
    if (name.startsWith(wanted)) starts.push(person);
    else if (wanted && name.includes(wanted)) contains.push(person);
  }
  return [...starts, ...contains].slice(0, MAX_SHOWN);
}

export class MentionComplete {
  #input;
  #people;
  #list;
  #options = [];
  #active = -1;
  #start = 0;

  /**
   * input: the textarea. people(): [{username, label}] who may be mentioned now (the room's
   * members but the reader, and {username: "room"} for those who may say @room).
   */
  constructor(input, { people }) {
    this.#input = input;
    this.#people = people;
    const id = `mention-list-${++lists}`;
    this.#list = el("ul", { class: "mention-list", role: "listbox", id, "aria-label": "People to mention" });
    this.#list.hidden = true;
    input.after(this.#list);
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", id);
    // Registered before the composer's own keydown listener: an Enter that takes a suggestion
    // stops here.
    input.addEventListener("keydown", (event) => this.#onKey(event));
    input.addEventListener("input", () => this.refresh());
    input.addEventListener("click", () => this.refresh());
    input.addEventListener("blur", () => this.close());
    // mousedown, not click: the textarea must not lose the focus first.
    this.#list.addEventListener("mousedown", (event) => {
      const option = event.target.closest("[role=option]");
      if (!option) return;
      event.preventDefault();
      this.#take(Number(option.dataset.index));
    });
  }

  get isOpen() {
    return !this.#list.hidden;
  }

  /** Look at what is typed before the caret and show (or hide) the suggestions. */
  refresh() {
    const input = this.#input;
    const found = input.selectionStart === input.selectionEnd ? mentionAt(input.value, input.selectionStart) : null;
    const matches = found ? matchPeople(this.#people(), found.query) : [];
    if (!matches.length) {
      this.close();
      return;
    }
    this.#start = found.start;
    this.#options = matches;
    this.#list.replaceChildren(
      ...matches.map((person, index) =>
        el(
          "li",
          {
            role: "option",
            id: `${this.#list.id}-${index}`,
            class: "mention-option",
            "data-index": index,
            "aria-selected": "false",
          },
          el("span", { class: "mention-option-name" }, `@${person.username}`),
          person.label && el("span", { class: "mention-option-label" }, person.label),
        ),
      ),
    );
    this.#list.hidden = false;
    this.#select(0);
  }

  close() {
    this.#list.hidden = true;
    this.#active = -1;
    this.#input.removeAttribute("aria-activedescendant");
  }

  #select(index) {
    const count = this.#options.length;
    this.#active = (index + count) % count;
    for (const [i, node] of [...this.#list.children].entries()) {
      node.setAttribute("aria-selected", String(i === this.#active));
      node.classList.toggle("is-active", i === this.#active);
    }
    this.#input.setAttribute("aria-activedescendant", `${this.#list.id}-${this.#active}`);
  }

  #take(index) {
    const person = this.#options[index];
    if (!person) return;
    const input = this.#input;
    const done = completeMention(input.value, this.#start, input.selectionStart, person.username);
    input.value = done.text;
    input.setSelectionRange(done.caret, done.caret);
    this.close();
    input.dispatchEvent(new Event("input", { bubbles: true })); // the composer's size, checks, typing
  }

  #onKey(event) {
    if (!this.isOpen || event.isComposing) return;
    const keys = {
      ArrowDown: () => this.#select(this.#active + 1),
      ArrowUp: () => this.#select(this.#active - 1),
      Enter: () => this.#take(this.#active),
      Tab: () => this.#take(this.#active),
      Escape: () => this.close(),
    };
    const action = !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey ? keys[event.key] : null;
    if (!action) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    action();
  }
}
