// Keyboard access to a message list (WCAG 2.1.1, 2.4.3): the list is one tab stop (a roving
// tabindex: the current message has tabindex 0, the others -1), ArrowUp/ArrowDown (Home/End) move
// between messages, and a message's action buttons (react, reply, edit, delete…), shown on hover,
// are tab stops only while focus is in that message. Without this every hidden button of every
// message was a tab stop.
//
// Rows are drawn and redrawn by message-view.js at any time (a reaction, an edit): a
// MutationObserver settles each new row, and a row redrawn while it had focus gets it back.

const ROW = ".msg[data-id]";
const ACTION = ".msg-actions button";

export class RowFocus {
  #list;
  #currentId = null; // the row that is the list's tab stop
  #focusedId = null; // the row focus is in, if any
  #followEnd = true; // the tab stop is the newest row, and moves on to newer ones

  constructor(list) {
    this.#list = list;
    list.addEventListener("focusin", (event) => this.#entered(event.target));
    list.addEventListener("focusout", (event) => this.#left(event.target, event.relatedTarget));
    list.addEventListener("keydown", (event) => this.#key(event));
    new MutationObserver(() => this.#settle()).observe(list, { childList: true, subtree: true });
    this.#settle();
  }

  #rows() {
    return this.#list.querySelectorAll(`:scope > ${ROW}`);
  }

  #row(id) {
    return id === null ? null : this.#list.querySelector(`:scope > ${ROW}[data-id="${CSS.escape(id)}"]`);
  }

  #rowOf(node) {
    const row = node instanceof Element ? node.closest(ROW) : null;
    return row && row.parentElement === this.#list ? row : null;
  }

  /** New or redrawn rows and toolbars: out of the tab order, but for the current row. */
  #settle() {
    // A row removed while it had focus fires no focusout: if focus has since gone elsewhere (the
    // editor closing puts it in the composer), no row has it any more.
    const active = document.activeElement;
    if (active && active !== document.body && !this.#list.contains(active)) this.#focusedId = null;
    for (const row of this.#list.querySelectorAll(`:scope > ${ROW}:not([tabindex])`)) row.tabIndex = -1;
    for (const button of this.#list.querySelectorAll(`${ACTION}:not([tabindex])`)) {
      button.tabIndex = this.#rowOf(button)?.dataset.id === this.#focusedId ? 0 : -1;
    }
    const rows = this.#rows();
    let current = this.#row(this.#currentId);
    if (!current || (this.#followEnd && current !== rows[rows.length - 1] && this.#focusedId !== this.#currentId)) {
      current = rows[rows.length - 1] || null;
      this.#followEnd = true;
    }
    for (const row of this.#list.querySelectorAll(`:scope > ${ROW}[tabindex="0"]`)) {
      if (row !== current) row.tabIndex = -1;
    }
    if (current) current.tabIndex = 0;
    this.#currentId = current?.dataset.id ?? null;
    // A row redrawn while focus was in it (a reaction arrived, an edit landed): focus stays on it.
    if (this.#focusedId !== null && (!document.activeElement || document.activeElement === document.body)) {
      this.#row(this.#focusedId)?.focus({ preventScroll: true });
    }
  }

  #entered(target) {
    const row = this.#rowOf(target);
    if (!row) return;
    if (row.dataset.id !== this.#currentId) {
      const old = this.#row(this.#currentId);
      if (old) old.tabIndex = -1;
      row.tabIndex = 0;
      this.#currentId = row.dataset.id;
    }
    const rows = this.#rows();
    this.#followEnd = row === rows[rows.length - 1];
    this.#focusedId = row.dataset.id;
    for (const button of row.querySelectorAll(ACTION)) button.tabIndex = 0;
  }

  #left(target, next) {
    const row = this.#rowOf(target);
    if (!row || (next instanceof Node && row.contains(next))) return;
    if (!row.isConnected) return; // being redrawn: #settle gives focus back to its new copy
    this.#focusedId = null;
    for (const button of row.querySelectorAll(ACTION)) button.tabIndex = -1;
  }

  #key(event) {
    const row = this.#rowOf(event.target);
    if (!row || event.target !== row || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const rows = [...this.#rows()];
    const index = rows.indexOf(row);
    const to = {
      ArrowUp: rows[index - 1],
      ArrowDown: rows[index + 1],
      Home: rows[0],
      End: rows[rows.length - 1],
    }[event.key];
    if (event.key in { ArrowUp: 1, ArrowDown: 1, Home: 1, End: 1 }) event.preventDefault();
    to?.focus();
  }
}
