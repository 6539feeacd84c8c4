// The REST API as the dashboard uses it: the key in a header (never a URL), error envelopes
// as ApiError, and Server-Sent Events read with fetch() (EventSource cannot send headers).

const KEY = "lensforge.apiKey";

export class ApiError extends Error {
  constructor(status, envelope) {
    const error = (envelope && envelope.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.envelope = envelope;
  }
}

export const apiKey = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

function headers(extra = {}) {
  const key = apiKey.get();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function failure(response) {
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  const error = new ApiError(response.status, envelope);
  if (response.status === 401) onUnauthorized(error);
  return error;
}

/** JSON from the API; throws ApiError with the error envelope on any non-2xx answer. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, headers: headers({ Accept: "application/json" }), signal };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** A blob (an image a tool returned) as an object URL for <img src>. */
export async function blobUrl(digest, signal) {
  const response = await fetch(`/v1/blobs/${encodeURIComponent(digest)}`, { headers: headers(), signal });
  if (!response.ok) throw await failure(response);
  return URL.createObjectURL(await response.blob());
}

/** Reads an SSE stream, calling onEvent(name, data) per event, until it ends or is aborted. */
export async function stream(path, onEvent, signal) {
  const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}
