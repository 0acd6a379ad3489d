// The phone layout (app.css, max-width 760px): the room list and the members panel are drawers
// that slide over the chat, opened by the buttons in the chat header ([data-drawer-open]) and
// closed by their ✕, the backdrop, Escape, or opening the other one. On wider screens the buttons
// are hidden and the panels are plain columns, so nothing here runs.
const backdrop = document.getElementById("drawer-backdrop");
let open = null; // the open drawer element

function toggles(drawer) {
  return document.querySelectorAll(`[data-drawer-open="${CSS.escape(drawer.id)}"]`);
}

export function closeDrawer({ focus = true } = {}) {
  if (!open) return;
  const drawer = open;
  open = null;
  drawer.classList.remove("is-open");
  document.body.classList.remove("has-drawer");
  if (backdrop) backdrop.hidden = true;
  for (const button of toggles(drawer)) button.setAttribute("aria-expanded", "false");
  if (focus) toggles(drawer)[0]?.focus();
}

export function openDrawer(drawer) {
  if (open === drawer) return;
  closeDrawer({ focus: false });
  open = drawer;
  drawer.classList.add("is-open");
  document.body.classList.add("has-drawer");
  if (backdrop) backdrop.hidden = false;
  for (const button of toggles(drawer)) button.setAttribute("aria-expanded", "true");
  drawer.querySelector("[data-drawer-close]")?.focus();
}

export function setUpDrawers() {
  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-drawer-open]");
    if (opener) {
      const drawer = document.getElementById(opener.dataset.drawerOpen);
      if (drawer === open) closeDrawer();
      else if (drawer) openDrawer(drawer);
      return;
    }
    if (event.target.closest("[data-drawer-close]") || event.target === backdrop) closeDrawer();
  });
  document.addEventListener("keydown", (event) => {
    // A dialog or a menu inside the drawer handles its own Escape first.
    if (event.key === "Escape" && open && !document.querySelector("dialog[open]")) closeDrawer();
  });
}
