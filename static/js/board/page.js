// The board page (/rooms/<room>/boards/<board>/): one board full-screen on the page's own connection.
import { readJsonScript } from "../dom.js";
import { LiveSocket } from "../live.js";
import { BoardApp } from "./app.js";

performance.mark("parley-board-module"); // this module runs (its imports loaded and evaluated)
const data = readJsonScript("board-data");
const config = readJsonScript("client-config");
const abilities = config.roles[data.role] || {};
// The board's JSON, drawn before the Yjs state: fetched and parsed by preload.js while this
// module's imports loaded (the template also preloads it: a <link rel="preload">).
const initial =
  window.parleyBoardJson ||
  fetch(`/api/v1/boards/${encodeURIComponent(data.board.id)}/`, { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : null))
    .catch(() => null);
let app = null;

/** Our role in the board's room changed (member.update), or we left it: the tools follow. */
function onMembership(frame) {
  if (frame.type === "member.update" && frame.room === data.board.room && frame.member.user.id === data.me.id) {
    app.setCanEdit(Boolean(frame.member.role && config.roles[frame.member.role]?.send));
  } else if (frame.type === "room.removed" && frame.room === data.board.room) app.setCanEdit(false);
}

// WebSocket, else Server-Sent Events, else long-polling (live.js), as the chat: a stream follows
// this board too (`boards`), and the board's writes then go over REST (board/sync.js). A
// connection of its own (not shared with the browser's other tabs: its stream follows this board).
const socket = new LiveSocket({
  fallback: true,
  share: false,
  boards: [data.board.id],
  onFrame: (frame) => {
    if (!app) return;
    onMembership(frame);
    app.onFrame(frame);
  },
  onState: (state, transport) => app?.onSocketState(state, transport),
});
app = new BoardApp(document.getElementById("board"), {
  board: data.board,
  me: data.me,
  canEdit: Boolean(abilities.send),
  canManage: Boolean(abilities.manage),
  send: (frame) => socket.send(frame),
  standalone: true,
  initial,
});
window.parleyBoard = app; // for the browser tests and the console
// Others see our cursor go at once (over a socket its close says so; over REST, a last request).
window.addEventListener("pagehide", () => app.sync.sayLeaving());
socket.start();
