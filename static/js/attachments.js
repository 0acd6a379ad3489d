// Attachments (docs/attachments.md): the composer's tray of uploads and how a message shows its
// files. An upload goes straight to the store: ask Parley for a presigned form, POST the file to
// it (XHR, for upload progress), then ask Parley to complete it; the message is sent with the ids
// of completed uploads. Images show as thumbnails (click opens the full image), other files as
// chips. Every URL shown goes through Parley's `download/` redirect, which checks membership and
// hands out a fresh presigned URL: a page left open never holds an expired link.
import { csrfToken, HttpError, sendJson } from "./api.js";
import { el, lineIcon } from "./dom.js";

const CLIP = ["M10.6 4.6 5.4 9.8a1.6 1.6 0 0 0 2.3 2.3l5.5-5.5a3 3 0 0 0-4.3-4.3L3.4 7.8a4.4 4.4 0 0 0 6.2 6.2l4.2-4.2"];
const THUMB_BOX = 320; // CSS pixels: the largest an inline image is drawn

/** "1.2 MB", "340 KB", "12 bytes". */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} byte${bytes === 1 ? "" : "s"}`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

function downloadUrl(roomId, attachment, variant) {
  const path = `/api/v1/rooms/${encodeURIComponent(roomId)}/attachments/${encodeURIComponent(attachment.id)}/download/`;
  return variant ? `${path}?variant=${variant}` : path;
}

/** Fit (width, height) into THUMB_BOX, never enlarging. */
function fitted(width, height) {
  if (!width || !height) return [THUMB_BOX, THUMB_BOX];
  const scale = Math.min(1, THUMB_BOX / width, THUMB_BOX / height);
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

function fileChip(roomId, attachment) {
  return el(
    "a",
    {
      class: "attachment-file",
      href: downloadUrl(roomId, attachment),
      target: "_blank",
      rel: "noopener",
      title: `Download ${attachment.name}`,
    },
    lineIcon(...CLIP),
    el("span", { class: "attachment-name" }, attachment.name),
    el("span", { class: "attachment-size" }, formatSize(attachment.size)),
  );
}

function imagePreview(roomId, attachment) {
  if (attachment.thumbnail !== "ready") {
    // Being made (a message.update of the message brings it): a labelled box meanwhile.
    return el(
      "a",
      { class: "attachment-image is-pending", href: downloadUrl(roomId, attachment), target: "_blank", rel: "noopener" },
      el("span", { class: "attachment-placeholder" }, `Preparing ${attachment.name}…`),
    );
  }
  const [width, height] = fitted(attachment.width, attachment.height);
  const img = el("img", {
    loading: "lazy", // before src: an image is fetched only once it is near the screen
    decoding: "async",
    alt: attachment.name,
    width,
    height,
    src: downloadUrl(roomId, attachment, "thumbnail"),
  });
  return el(
    "a",
    {
      class: "attachment-image",
      href: downloadUrl(roomId, attachment),
      target: "_blank",
      rel: "noopener",
      title: `${attachment.name} (${formatSize(attachment.size)}), open the full image`,
    },
    img,
  );
}

/** The files of a message as DOM, or null when it has none. */
export function renderAttachments(message) {
  const attachments = message.deleted ? [] : message.attachments || [];
  if (!attachments.length) return null;
  return el(
    "div",
    { class: "msg-attachments" },
    ...attachments.map((a) =>
      a.kind === "image" && a.thumbnail !== "failed" ? imagePreview(message.room, a) : fileChip(message.room, a),
    ),
  );
}

/** POST `file` to a presigned form with progress; resolves when the store accepted it. */
function postForm(upload, file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.url);
    // The local store is Parley itself; S3 ignores the header (it is not in its policy).
    if (new URL(upload.url, location.href).origin === location.origin) xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", (event) => event.lengthComputable && onProgress(event.loaded / event.total));
    xhr.addEventListener("load", () =>
      xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new HttpError(xhr.status, "upload_refused", "The store refused the file.")),
    );
    xhr.addEventListener("error", () => reject(new HttpError(0, "network", "The upload was interrupted.")));
    xhr.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    signal.addEventListener("abort", () => xhr.abort());
    xhr.send(form);
  });
}

/**
 * The composer's uploads: `tray` (a <ul>) lists them with progress; `ids()` are those ready to
 * send. onChange(): something started, finished or failed (the composer re-checks Send).
 */
export class AttachmentTray {
  #tray;
  #roomId;
  #onChange;
  #uploads = []; // {file, id, status: "uploading"|"ready"|"failed", error, node, progress, controller}

  constructor(tray, { roomId, onChange = () => {} }) {
    this.#tray = tray;
    this.#roomId = roomId;
    this.#onChange = onChange;
  }

  /** Completed uploads' ids, in the order they were added. */
  ids() {
    return this.#uploads.filter((u) => u.status === "ready").map((u) => u.id);
  }

  busy() {
    return this.#uploads.some((u) => u.status === "uploading");
  }

  /** Forget every upload (they were sent): the tray empties. */
  clear() {
    this.#uploads = [];
    this.#tray.replaceChildren();
    this.#tray.hidden = true;
  }

  add(files) {
    for (const file of files) this.#start(file);
  }

  async #start(file) {
    const upload = { file, id: null, status: "uploading", error: "", controller: new AbortController() };
    upload.progress = el("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
    upload.node = this.#chip(upload);
    this.#uploads.push(upload);
    this.#tray.append(upload.node);
    this.#tray.hidden = false;
    this.#onChange();
    const base = `/api/v1/rooms/${encodeURIComponent(this.#roomId)}/attachments/`;
    try {
      const started = await sendJson("POST", base, { name: file.name || "pasted-image", size: file.size, content_type: file.type });
      upload.id = started.attachment.id;
      await postForm(started.upload, file, (done) => (upload.progress.value = done), upload.controller.signal);
      await sendJson("POST", `${base}${encodeURIComponent(upload.id)}/complete/`);
      upload.status = "ready";
    } catch (error) {
      if (error.name === "AbortError") return;
      upload.status = "failed";
      upload.error = error.message || "The upload failed.";
    }
    if (!this.#uploads.includes(upload)) return; // removed meanwhile
    const chip = this.#chip(upload);
    upload.node.replaceWith(chip);
    upload.node = chip;
    this.#onChange();
  }

  #remove(upload) {
    upload.controller.abort();
    this.#uploads = this.#uploads.filter((u) => u !== upload);
    upload.node.remove();
    this.#tray.hidden = !this.#uploads.length;
    if (upload.id) {
      const path = `/api/v1/rooms/${encodeURIComponent(this.#roomId)}/attachments/${encodeURIComponent(upload.id)}/`;
      sendJson("DELETE", path).catch(() => {}); // the hourly prune removes what this misses
    }
    this.#onChange();
  }

  #chip(upload) {
    const remove = el("button", { type: "button", class: "attachment-remove", "aria-label": `Remove ${upload.file.name}`, title: "Remove" }, "✕");
    remove.addEventListener("click", () => this.#remove(upload));
    return el(
      "li",
      { class: `attachment-chip is-${upload.status}`, "data-status": upload.status },
      lineIcon(...CLIP),
      el("span", { class: "attachment-name" }, upload.file.name || "pasted image"),
      el("span", { class: "attachment-size" }, formatSize(upload.file.size)),
      upload.status === "uploading" && upload.progress,
      upload.status === "failed" && el("span", { class: "attachment-error", role: "alert" }, upload.error),
      remove,
    );
  }
}

/**
 * Wire the composer's ways in: the attach button (`button` opens `input`, a hidden file input),
 * files dropped on `form`, and files pasted into `textarea`.
 */
export function bindAttachmentInputs({ form, textarea, button, input, tray }) {
  button.addEventListener("click", () => textarea.disabled || input.click());
  input.addEventListener("change", () => {
    tray.add([...input.files]);
    input.value = "";
  });
  form.addEventListener("dragover", (event) => {
    if (![...(event.dataTransfer?.types || [])].includes("Files") || textarea.disabled) return;
    event.preventDefault();
    form.classList.add("is-dropping");
  });
  form.addEventListener("dragleave", () => form.classList.remove("is-dropping"));
  form.addEventListener("drop", (event) => {
    form.classList.remove("is-dropping");
    if (!event.dataTransfer?.files?.length || textarea.disabled) return;
    event.preventDefault();
    tray.add([...event.dataTransfer.files]);
  });
  textarea.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (!files.length) return; // text pastes as text
    event.preventDefault();
    tray.add(files);
  });
}
