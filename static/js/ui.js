// Page-wide behaviour on every page: dismissible flash notices, avatar colours, the settings menu.
import { paintAvatars } from "./dom.js";
import { setUpSettingsMenu } from "./settings.js";

// Good news fades by itself; errors and warnings stay until dismissed, so nobody misses them.
const AUTO_DISMISS_MS = 6000;
const AUTO_DISMISS_LEVELS = ["flash-success", "flash-info"];

function dismiss(flash) {
  flash.classList.add("is-leaving");
  setTimeout(() => {
    flash.remove();
    // Drop the empty container too, so it takes no space.
    const stack = document.querySelector(".flash-stack");
    if (stack && !stack.children.length) stack.remove();
  }, 200);
}

function autoDismiss(flash) {
  let timer = setTimeout(() => dismiss(flash), AUTO_DISMISS_MS);
  // Hold it while the reader is pointing at it or has focus inside it.
  const hold = () => clearTimeout(timer);
  const release = () => {
    clearTimeout(timer);
    timer = setTimeout(() => dismiss(flash), AUTO_DISMISS_MS / 2);
  };
  flash.addEventListener("mouseenter", hold);
  flash.addEventListener("focusin", hold);
  flash.addEventListener("mouseleave", release);
  flash.addEventListener("focusout", release);
}

function setUpFlashes() {
  document.addEventListener("click", (event) => {
    const flash = event.target.closest("[data-dismiss]")?.closest(".flash");
    if (flash) dismiss(flash);
  });
  for (const flash of document.querySelectorAll(".flash")) {
    if (AUTO_DISMISS_LEVELS.some((level) => flash.classList.contains(level))) autoDismiss(flash);
  }
}

/**
 * A form that came back with errors: focus its summary (role=alert), so screen readers read out
 * what is wrong and keyboard users start from there; its links lead to each field.
 */
function focusErrorSummary() {
  const summary = document.querySelector("[data-error-summary]");
  if (!summary) return;
  summary.focus();
  summary.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='#']");
    const field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    field.focus();
  });
}

setUpFlashes();
focusErrorSummary();
paintAvatars();
setUpSettingsMenu();
