// Managing the room from its page (docs/rooms-ui.md): the settings dialog (rename, topic, kind,
// delete), leaving with a confirmation (the last owner names the next owner in the same step),
// and a small confirmation dialog the member menu uses. The forms post to the page views
// (rooms/views.py), which call rooms/services.py like the REST API does.
import { el } from "./dom.js";

/** Close a <dialog> from its [data-dialog-cancel] buttons. */
function cancellable(dialog) {
  for (const button of dialog.querySelectorAll("[data-dialog-cancel]")) {
    button.addEventListener("click", () => dialog.close());
  }
}

/** confirm({title, text, ok}) -> Promise<boolean>, on the page's #confirm-dialog. */
export function confirmer(dialog) {
  return ({ title, text, ok }) =>
    new Promise((resolve) => {
      dialog.querySelector("#confirm-title").textContent = title;
      dialog.querySelector("#confirm-text").textContent = text;
      dialog.querySelector("#confirm-ok").textContent = ok;
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.showModal();
    });
}

export class RoomManagement {
  #me;
  #members;
  #confirm;
  #leaveDialog = document.getElementById("leave-dialog");
  #settingsDialog = document.getElementById("room-settings-dialog");
  #settingsButton = document.getElementById("room-settings-button");
  #deleteForm = document.getElementById("room-delete-form");

  /** me: {id, username}; members(): [{id, username, role}] as the member list shows them now. */
  constructor({ me, members, confirm }) {
    this.#me = me;
    this.#members = members;
    this.#confirm = confirm;
    document.getElementById("leave-form")?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.askToLeave();
    });
    if (this.#leaveDialog) cancellable(this.#leaveDialog);
    if (this.#settingsDialog) cancellable(this.#settingsDialog);
    this.#settingsButton?.addEventListener("click", () => this.#settingsDialog.showModal());
    this.#deleteForm?.addEventListener("submit", async (event) => {
      event.preventDefault();
      const ok = await this.#confirm({
        title: "Delete this room?",
        text: "The room and all of its messages will be gone for everyone. This can't be undone.",
        ok: "Delete room",
      });
      if (ok) this.#deleteForm.submit();
    });
  }

  /** Open the leave dialog, worded for who is leaving: the last owner picks a successor. */
  askToLeave() {
    const dialog = this.#leaveDialog;
    if (!dialog) return;
    const everyone = this.#members();
    const me = everyone.find((member) => member.id === this.#me.id);
    const others = everyone.filter((member) => member.id !== this.#me.id);
    const lastOwner = me?.role === "owner" && others.length > 0 && !others.some((m) => m.role === "owner");
    const field = dialog.querySelector("#leave-owner-field");
    const select = dialog.querySelector("#leave-new-owner");
    const text = dialog.querySelector("#leave-text");
    text.dataset.original ??= text.textContent;
    text.textContent = others.length
      ? text.dataset.original
      : "You're its last member: leaving deletes the room and its messages.";
    field.hidden = !lastOwner;
    select.disabled = !lastOwner; // a disabled select is not submitted
    select.replaceChildren(
      ...(lastOwner ? this.#successors(others) : []).map((m) => el("option", { value: m.username }, m.username)),
    );
    dialog.querySelector("#leave-confirm").textContent = lastOwner ? "Hand over and leave" : "Leave room";
    dialog.showModal();
  }

  /** Admins first (they already run the room), then members, then viewers. */
  #successors(others) {
    const order = { admin: 0, member: 1, viewer: 2 };
    return [...others].sort((a, b) => (order[a.role] ?? 3) - (order[b.role] ?? 3));
  }

  /** The room as it is now (room.update, maybe from someone else): the leave dialog names it, and
   * the settings form starts from it unless the reader is editing it right now. */
  showRoom(room) {
    const leaveTitle = document.getElementById("leave-title");
    if (leaveTitle) leaveTitle.textContent = `Leave ${room.name}?`;
    const form = document.getElementById("room-settings-form");
    if (!form || this.#settingsDialog.open) return;
    for (const field of ["name", "topic", "kind"]) {
      if (form.elements[field]) form.elements[field].value = room[field] ?? "";
    }
  }

  /** Follow the reader's role: settings for owners and admins, delete for owners. */
  refresh({ role, canManage, removed }) {
    if (this.#settingsButton) this.#settingsButton.hidden = removed || !canManage;
    if (this.#deleteForm) this.#deleteForm.hidden = removed || role !== "owner";
    if (removed || !canManage) this.#settingsDialog?.close();
  }
}
