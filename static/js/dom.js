// Small DOM helpers shared by Parley's pages. User content only ever goes in via textContent.

/**
 * Create an element. `attrs` keys starting with "data-"/"aria-" become attributes, `class`
 * sets className, anything else is assigned as a property. Children may be strings (text nodes,
 * never parsed as HTML), nodes, or null/false (skipped).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "title") {
      node.setAttribute(key, value === true ? "" : String(value));
    } else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A stable hue per user, so the same person keeps the same avatar colour everywhere. */
export function avatarHue(userId) {
  let hash = 0;
  for (const char of String(userId)) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return (hash * 137) % 360;
}

/** Colour every server-rendered avatar under `root` that names its user (data-avatar-for). */
export function paintAvatars(root = document) {
  for (const node of root.querySelectorAll("[data-avatar-for]")) {
    node.style.setProperty("--avatar-hue", avatarHue(node.dataset.avatarFor));
  }
}

/** The name to show for a user payload: the display name (the server falls back to the username). */
export function displayName(user) {
  return user ? user.display_name || user.username : "";
}

/** A letter bubble: the first letter of the user's name on the user's colour. */
function letterAvatar(user, size) {
  const node = el(
    "span",
    { class: `avatar ${size}`.trim(), "aria-hidden": "true", "data-avatar-for": user ? user.id : "" },
    user ? displayName(user).slice(0, 1).toUpperCase() : "?",
  );
  if (user) node.style.setProperty("--avatar-hue", avatarHue(user.id));
  return node;
}

/**
 * A user's avatar: their picture (avatar_url), or the letter bubble (also when the picture no
 * longer loads, e.g. it was replaced since). Decorative: the name is always written beside it.
 */
export function avatar(user, size = "") {
  if (!user?.avatar_url) return letterAvatar(user, size);
  const img = el("img", { class: `avatar avatar-img ${size}`.trim(), alt: "", src: user.avatar_url, width: 128, height: 128 });
  img.addEventListener("error", () => img.replaceWith(letterAvatar(user, size)), { once: true });
  return img;
}

/** Read a value passed from Django with the json_script filter. */
export function readJsonScript(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const LOCK_PATH =
  "M5 7V5a3 3 0 1 1 6 0v2h.5A1.5 1.5 0 0 1 13 8.5v5a1.5 1.5 0 0 1-1.5 1.5h-7A1.5 1.5 0 0 1 3 13.5v-5" +
  "A1.5 1.5 0 0 1 4.5 7H5Zm1.5 0h3V5a1.5 1.5 0 1 0-3 0v2Z";

/** The glyph in front of a room name; mirrors templates/includes/room_icon.html. */
export function roomIcon(kind) {
  if (kind === "private") {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "room-icon");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Private room");
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", LOCK_PATH);
    svg.append(path);
    return svg;
  }
  const direct = kind === "direct";
  return el(
    "span",
    { class: "room-icon", role: "img", "aria-label": direct ? "Direct conversation" : "Public room" },
    direct ? "@" : "#",
  );
}

export const ROLE_LABELS = { owner: "Owner", admin: "Admin", member: "Member", viewer: "Viewer" };

/** The small pill naming a member's role. */
export function roleBadge(role) {
  return el("span", { class: `role-badge role-${role}` }, ROLE_LABELS[role] || role);
}

/** Insert `node` into `list` keeping children ordered by `key` (locale-aware, case-insensitive). */
export function insertSorted(list, node, key) {
  const value = key(node);
  const before = [...list.children].find(
    (child) => child !== node && key(child).localeCompare(value, undefined, { sensitivity: "base" }) > 0,
  );
  list.insertBefore(node, before || null);
}

/** A small stroked line icon (16×16 grid) made of one or more SVG path strings; decorative. */
export function lineIcon(...paths) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/** Grow a textarea with its content, up to `max` pixels (then it scrolls). */
export function autosize(box, max = 200) {
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, max)}px`;
}
