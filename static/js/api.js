// REST calls from the page: same-origin session cookie, JSON errors as {"error": {"code", "message"}}.

export class HttpError extends Error {
  constructor(status, code, message) {
    super(message || `request failed: ${status} ${code || ""}`.trim());
    this.status = status;
    this.code = code;
  }
}

async function handle(response) {
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new HttpError(response.status, body?.error?.code, body?.error?.message);
  }
  return response.status === 204 ? null : response.json();
}

/** GET a JSON document; throws HttpError (with the API's error code, if any) on a non-2xx answer. */
export async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  return handle(response);
}

/** Django's CSRF token, from the `csrftoken` cookie its templates set. */
export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** POST/PATCH/DELETE JSON with the CSRF header session-authenticated writes need. */
export async function sendJson(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return handle(response);
}
