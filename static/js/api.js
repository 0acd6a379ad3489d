// REST reads from the page: same-origin session cookie, JSON errors as {"error": {"code", "message"}}.

export class HttpError extends Error {
  constructor(status, code) {
    super(`request failed: ${status} ${code || ""}`.trim());
    this.status = status;
    this.code = code;
  }
}

/** GET a JSON document; throws HttpError (with the API's error code, if any) on a non-2xx answer. */
export async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new HttpError(response.status, body?.error?.code);
  }
  return response.json();
}
