// How a message shows its files (static/js/attachments.js): thumbnails through Parley's download
// redirect, pending and failed images, file chips; deleted messages show none.
import { formatSize, renderAttachments } from "../attachments.js";
import { assert, assertEqual, test } from "./harness.js";

const ROOM = "11111111-1111-4111-8111-111111111111";

function attachment(fields) {
  return { id: "22222222-2222-4222-8222-222222222222", name: "a.png", size: 2048, content_type: "image/png", kind: "image", width: 1600, height: 800, thumbnail: "ready", ...fields };
}

test("attachments: images show their thumbnail, fitted, linking to the full image", () => {
  const node = renderAttachments({ room: ROOM, deleted: false, attachments: [attachment({})] });
  const link = node.querySelector("a.attachment-image");
  const img = link.querySelector("img");
  const base = `/api/v1/rooms/${ROOM}/attachments/22222222-2222-4222-8222-222222222222/download/`;
  assertEqual(new URL(link.href).pathname, base, "the link opens the full image");
  assertEqual(new URL(img.src).pathname + new URL(img.src).search, `${base}?variant=thumbnail`, "the thumbnail");
  assertEqual([img.width, img.height], [320, 160], "fitted into 320 pixels, its shape kept");
  assertEqual(img.alt, "a.png", "the name is the alternative text");
  assertEqual(link.rel, "noopener", "opened safely");
});

test("attachments: a pending thumbnail is a labelled placeholder; a failed one a file chip", () => {
  const node = renderAttachments({
    room: ROOM,
    deleted: false,
    attachments: [attachment({ thumbnail: "pending" }), attachment({ thumbnail: "failed", name: "b.png" }), attachment({ kind: "file", name: "c.pdf", thumbnail: "none", size: 5 * 1024 * 1024 })],
  });
  assert(node.children[0].querySelector(".attachment-placeholder").textContent.includes("a.png"), "pending names the file");
  assertEqual(node.children[1].className, "attachment-file", "an image that could not be decoded is a file");
  assertEqual(node.children[2].querySelector(".attachment-size").textContent, "5.0 MB", "files show their size");
  assertEqual(node.querySelectorAll("img").length, 0, "no image without a thumbnail");
});

test("attachments: none for messages without files, or deleted", () => {
  assertEqual(renderAttachments({ room: ROOM, deleted: false, attachments: [] }), null, "no files");
  assertEqual(renderAttachments({ room: ROOM, deleted: true, attachments: [attachment({})] }), null, "deleted");
  assertEqual([formatSize(1), formatSize(1536), formatSize(20 * 1024 * 1024)], ["1 byte", "1.5 KB", "20 MB"], "sizes");
});
