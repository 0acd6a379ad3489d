// The scrolling message pane: following new messages down, the "New messages ↓" button, keeping
// the reader's place while older messages are inserted above, and what the reader can see.

const NEAR_TOP_PX = 200;
const NEAR_BOTTOM_PX = 120;

export class Scroller {
  #box;
  #jump;

  /**
   * box: the scrolling element. jump: the "New messages" button. onNearTop(): the reader is near
   * the top (load older messages). onMoved(): called at most once a frame while scrolling.
   */
  constructor(box, jump, { onNearTop = () => {}, onMoved = () => {} } = {}) {
    this.#box = box;
    this.#jump = jump;
    let scheduled = false;
    box.addEventListener(
      "scroll",
      () => {
        if (this.nearTop()) onNearTop();
        if (this.nearBottom()) jump.hidden = true;
        if (scheduled) return;
        scheduled = true;
        requestAnimationFrame(() => {
          scheduled = false;
          onMoved();
        });
      },
      { passive: true },
    );
    jump.addEventListener("click", () => this.toBottom());
  }

  nearTop() {
    return this.#box.scrollTop < NEAR_TOP_PX;
  }

  nearBottom() {
    const box = this.#box;
    return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM_PX;
  }

  /** Nothing to scroll yet: a short page in a tall window. */
  fits() {
    return this.#box.scrollHeight <= this.#box.clientHeight;
  }

  toBottom() {
    this.#box.scrollTop = this.#box.scrollHeight;
    this.#jump.hidden = true;
  }

  /**
   * Run `change` (which adds or redraws rows); then follow new rows down if the reader was at
   * the bottom (or `follow`), else offer the "New messages" button if rows were added.
   * `change` returns {added, updated}.
   */
  following(change, { follow = false } = {}) {
    const wasAtBottom = this.nearBottom();
    const { added, updated } = change();
    if (added || updated) {
      if (wasAtBottom || follow) this.toBottom();
      else if (added) this.#jump.hidden = false;
    }
    return { added, updated };
  }

  /** Run `change` (which inserts rows above) without moving what the reader is looking at. */
  keepingPosition(change) {
    const fromBottom = this.#box.scrollHeight - this.#box.scrollTop;
    const result = change();
    this.#box.scrollTop = this.#box.scrollHeight - fromBottom;
    return result;
  }

  /** The bottom edge of the visible pane, in viewport coordinates. */
  get visibleBottom() {
    return this.#box.getBoundingClientRect().bottom;
  }
}
