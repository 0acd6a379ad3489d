// Message search in the top bar (GET /api/v1/search/, search/api.py): the results panel under the
// box, with each hit's room, sender, date and snippet. A hit links to its room at the message
// (/rooms/<room>/#message-<sequence>): the room page loads history back to it (chat.js).
// Snippets are text pieces marked as matches or not; they reach the DOM through textContent only.
import { getJson, HttpError } from "./api.js";
import { el, readJsonScript } from "./dom.js";

const PAGE = 20;

const form = document.getElementById("search-form");
const input = document.getElementById("search-input");
const panel = document.getElementById("search-panel");
const list = document.getElementById("search-results");
const status = document.getElementById("search-status");
const more = document.getElementById("search-more");
const scope = document.getElementById("search-scope");
const scopeBox = document.getElementById("search-scope-row");
const newest = document.getElementById("search-newest");

const currentRoom = readJsonScript("room-data"); // on a room page: {id, name, …}
let query = null; // {q, room, order} of what is shown
let nextOffset = null;
let generation = 0; // answers to an older search are dropped

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function open() {
  panel.hidden = false;
  input.setAttribute("aria-expanded", "true");
}

function close() {
  panel.hidden = true;
  input.setAttribute("aria-expanded", "false");
}

function snippet(pieces) {
  return el(
    "p",
    { class: "search-snippet" },
    ...pieces.map((piece) => (piece.match ? el("mark", {}, piece.text) : piece.text)),
  );
}

function hitRow(hit) {
  const created = new Date(hit.created_at);
  const href = `/rooms/${encodeURIComponent(hit.room.id)}/#message-${hit.sequence}`;
  return el(
    "li",
    { class: "search-hit" },
    el(
      "a",
      { class: "search-hit-link", href, "data-room": hit.room.id, "data-sequence": hit.sequence },
      el(
        "span",
        { class: "search-hit-meta" },
        el("span", { class: "search-hit-room" }, `# ${hit.room.name}`),
        el("span", { class: "search-hit-sender" }, hit.sender ? hit.sender.display_name || hit.sender.username : "Deleted user"),
        el("time", { class: "search-hit-time", dateTime: hit.created_at }, dateFormat.format(created)),
      ),
      snippet(hit.snippet),
    ),
  );
}

function archivedNote(page) {
  const count = page.archived_days_not_searched;
  if (!count) return null;
  const days = page.archived_days.slice(0, 5).join(", ") + (count > 5 ? ", …" : "");
  return el(
    "p",
    { class: "search-archived", "data-testid": "search-archived" },
    `${count} archived ${count === 1 ? "day was" : "days were"} not searched (${days}). `,
    "Ask an administrator to restore a day to search it.",
  );
}

function showStatus(text) {
  status.replaceChildren(...(Array.isArray(text) ? text : [text]));
}

async function run({ append = false } = {}) {
  const mine = ++generation;
  const params = new URLSearchParams({ q: query.q, limit: String(PAGE), order: query.order });
  if (query.room) params.set("room", query.room);
  if (append) params.set("offset", String(nextOffset));
  else {
    list.replaceChildren();
    showStatus("Searching…");
  }
  more.hidden = true;
  open();
  let page;
  try {
    page = await getJson(`/api/v1/search/?${params}`);
  } catch (error) {
    if (mine !== generation) return;
    showStatus(error instanceof HttpError && error.status < 500 ? error.message : "Search failed. Please try again.");
    return;
  }
  if (mine !== generation) return;
  list.append(...page.results.map(hitRow));
  nextOffset = page.next_offset;
  more.hidden = !page.has_more;
  const shown = list.children.length;
  const summary = shown ? `${shown}${page.has_more ? "+" : ""} ${shown === 1 ? "result" : "results"}` : "No messages found.";
  showStatus([summary, archivedNote(page)].filter(Boolean));
}

function search() {
  const q = input.value.trim();
  if (!q) return;
  query = { q, room: currentRoom && scope.checked ? currentRoom.id : null, order: newest.checked ? "recent" : "rank" };
  run();
}

if (form) {
  if (currentRoom) {
    scopeBox.hidden = false;
    scope.nextElementSibling.textContent = `Only ${currentRoom.name}`;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  for (const box of [scope, newest]) box.addEventListener("change", () => query && search());
  more.addEventListener("click", () => nextOffset !== null && run({ append: true }));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      close();
      input.focus();
    }
  });
  // A hit in the room already open only moves the hash (chat.js follows it); close either way.
  list.addEventListener("click", (event) => {
    if (event.target.closest(".search-hit-link")) close();
  });
  document.addEventListener("click", (event) => {
    if (!panel.hidden && !form.contains(event.target)) close();
  });
  input.addEventListener("focus", () => query && list.children.length && open());
}
