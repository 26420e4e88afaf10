// The REST API client and the session (a bearer token kept in sessionStorage, so it
// is gone when the tab closes). Every request goes to the API's own origin.

const SESSION_KEY = "notifq.session";

// The API lives one level above the page (/dashboard/ -> /), also behind a path prefix.
const API_BASE = new URL("../", document.baseURI);

export class ApiError extends Error {
  constructor(status, body, headers) {
    super((body && body.error) || `request failed (HTTP ${status})`);
    this.status = status;
    this.detail = (body && Array.isArray(body.detail)) ? body.detail : [];
    this.retryAfter = headers ? Number(headers.get("Retry-After")) || 0 : 0;
  }
}

export class NetworkError extends Error {}

/** Claims of a JWT, read without verifying it (only to notice expiry early). */
function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

export const session = {
  get() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      return s && typeof s.token === "string" ? s : null;
    } catch {
      return null;
    }
  },
  set(token, email) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token, email }));
  },
  clear() {
    sessionStorage.removeItem(SESSION_KEY);
  },
  /** Whether the stored token has passed its `exp` (the server decides for real: 401). */
  expired() {
    const s = this.get();
    const c = s && claims(s.token);
    return !c || typeof c.exp !== "number" || c.exp * 1000 <= Date.now();
  },
};

const NAMESPACE_KEY = "notifq.namespace";

/** The namespace the pages show and create in (chosen in the header's menu). */
export const place = {
  get() {
    return sessionStorage.getItem(NAMESPACE_KEY) || "";
  },
  set(ns) {
    sessionStorage.setItem(NAMESPACE_KEY, ns);
  },
};

let unauthorizedHandler = () => {};

/** Called with a message when an authenticated request gets 401 (token expired or revoked). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

async function request(method, path, { body, auth = false, query } = {}) {
  const url = new URL(path.replace(/^\//, ""), API_BASE);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) {
    const s = session.get();
    if (s) headers.Authorization = `Bearer ${s.token}`;
  }
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (err) {
    throw new NetworkError(`cannot reach the notifq API (${err.message})`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text.slice(0, 200) };
    }
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, data, resp.headers);
    if (resp.status === 401 && auth) {
      session.clear();
      unauthorizedHandler("Your session has expired or is no longer valid. Please sign in again.");
    }
    throw err;
  }
  return { data, headers: resp.headers };
}

export const api = {
  async login(email, password) {
    return (await request("POST", "/auth/login", { body: { email, password } })).data;
  },
  async namespaces() {
    return (await request("GET", "/namespaces", { auth: true })).data;
  },
  async campaigns(limit, offset, namespace) {
    const query = { limit, offset, namespace };
    const { data, headers } = await request("GET", "/campaigns", { auth: true, query });
    return { items: data, total: Number(headers.get("X-Total-Count")) || data.length };
  },
  async campaign(id) {
    return (await request("GET", `/campaigns/${encodeURIComponent(id)}`, { auth: true })).data;
  },
  async create(body) {
    return (await request("POST", "/campaigns", { body, auth: true })).data;
  },
  async action(id, name) {
    const path = `/campaigns/${encodeURIComponent(id)}/${name}`;
    return (await request("POST", path, { auth: true })).data;
  },
  async messages(id, { status, after, limit }) {
    const path = `/campaigns/${encodeURIComponent(id)}/messages`;
    return (await request("GET", path, { auth: true, query: { status, after, limit } })).data;
  },
};
