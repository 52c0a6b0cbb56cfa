// The console's one way to call the JSON API (plain ES module, no build step).
//
//   import { api, ApiError } from "/assets/js/api.js";
//   const accounts = await api("/api/accounts");
//   await api("/api/runbooks", { method: "POST", body: { title: "...", body: "..." } });
//
// Same origin only, cookies included (the session), JSON in and out. A 4xx/5xx answer throws an
// ApiError carrying the API's own `{"error": {"code", "message"}}`, so a page shows the API's
// message as it is; a network failure throws an ApiError with code "network".

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

// The signed-in session's CSRF token (GET /api/session gives it): every change (any method but
// GET/HEAD) sends it as X-CSRF-Token once the shell has set it.
let csrfToken = "";

export function setCsrfToken(token) {
  csrfToken = token || "";
}

export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  if (!path.startsWith("/api/")) {
    throw new ApiError(0, "bad_path", `not an API path: ${path}`);
  }
  const init = {
    method,
    credentials: "same-origin",
    headers: { accept: "application/json", ...headers },
    signal,
  };
  if (csrfToken && method !== "GET" && method !== "HEAD") {
    init.headers["x-csrf-token"] = csrfToken;
  }
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "network", "the server could not be reached; check your connection");
  }
  if (response.status === 204) {
    return null;
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("application/json") ? await response.json() : await response.text();
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || "error",
      error.message || `the server answered ${response.status}`,
      error,
    );
  }
  return data;
}
