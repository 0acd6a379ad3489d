// The board page's first script (templates/boards/board.html): fetches and parses the board's
// JSON (GET /api/v1/boards/{id}/, which the template also preloads) while page.js's modules (Yjs
// and the board's code) are still loading, so that parsing it does not wait for them: it has no
// imports, so it runs as soon as the document is parsed (docs/performance.md). page.js takes the
// promise from window.parleyBoardJson (and fetches itself if it is missing).
let board = null;
try {
  board = JSON.parse(document.getElementById("board-data")?.textContent || "null")?.board || null;
} catch {
  board = null;
}
if (board && typeof board.id === "string") {
  window.parleyBoardJson = fetch(`/api/v1/boards/${encodeURIComponent(board.id)}/`, { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : null))
    .then((json) => {
      performance.mark("parley-board-json"); // the board's JSON received and parsed
      return json;
    })
    .catch(() => null);
}
