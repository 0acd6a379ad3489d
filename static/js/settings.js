// The settings menu in the top bar: personal preferences saved with PATCH /api/v1/me/.
import { sendJson } from "./api.js";

const STATUS_CLEAR_MS = 2500;

export function setUpSettingsMenu() {
  const button = document.getElementById("settings-button");
  const menu = document.getElementById("settings-menu");
  const toggle = document.getElementById("pref-read-receipts");
  const status = document.getElementById("pref-status");
  if (!button || !menu || !toggle) return;

  const setOpen = (open) => {
    menu.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) toggle.focus();
  };
  button.addEventListener("click", () => setOpen(menu.hidden));
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && !button.contains(event.target)) setOpen(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !menu.hidden) {
      setOpen(false);
      button.focus();
    }
  });

  let clearTimer = null;
  const say = (text, kind = "") => {
    clearTimeout(clearTimer);
    status.textContent = text;
    status.dataset.kind = kind;
    if (kind === "ok") clearTimer = setTimeout(() => (status.textContent = ""), STATUS_CLEAR_MS);
  };

  toggle.addEventListener("change", async () => {
    const wanted = toggle.checked;
    toggle.disabled = true;
    say("Saving…");
    try {
      const me = await sendJson("PATCH", "/api/v1/me/", { send_read_receipts: wanted });
      toggle.checked = me.send_read_receipts;
      say(me.send_read_receipts ? "Read receipts are on." : "Read receipts are off.", "ok");
    } catch (error) {
      toggle.checked = !wanted;
      say("Couldn't save that. Please try again.", "error");
      console.warn("Parley:", error);
    } finally {
      toggle.disabled = false;
    }
  });
}
