// Shared helpers of the dashboard's modules: the API, DOM building and
// formatting. No state but the token, kept in this browser tab only.

export const TOKEN_KEY = "runnel.token";
export const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);

// ---- token: kept only in this browser session -------------------------

export function takeTokenFromURL() {
  // runnel dev prints http://host/#token=...: the fragment never reaches a
  // server or its logs. Keep it for the session and clean the address bar.
  // An optional &next=/runs/ID opens a page after signing in.
  const m = location.hash.match(/^#token=([^&]+)(?:&next=(\/[^&]*))?/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + "#" + (m[2] ? decodeURIComponent(m[2]) : "/runs"));
  }
}

export const token = () => sessionStorage.getItem(TOKEN_KEY);

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/api/v1" + path, opts);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = data.error || {};
    if (resp.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      // The page shows the sign-in form again (app.js listens).
      window.dispatchEvent(new Event("runnel:signed-out"));
    }
    throw new APIError(resp.status, e.code || "error", e.message || resp.statusText);
  }
  return data;
}

// ---- small DOM helpers -----------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// set replaces a node's children, skipping null/false (conditional parts).
export function set(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

export const badge = (status) => el("span", { class: "badge s-" + status }, status.replace("_", " "));

export function fmtTime(t) {
  return t ? new Date(t).toLocaleTimeString(undefined, { hour12: false }) : "–";
}

export function fmtDuration(start, end) {
  if (!start) return "–";
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  return Math.floor(ms / 60000) + " m " + Math.round((ms % 60000) / 1000) + " s";
}

export function fmtJSON(v) {
  return v === undefined || v === null ? "" : JSON.stringify(v, null, 2);
}

export function showError(where, err) {
  set(where, el("p", { class: "error", role: "alert" }, err.message || String(err)));
}

// fmtAgo says how long ago t was, in words short enough for a table cell.
export function fmtAgo(t, now = Date.now()) {
  if (!t) return "–";
  const s = Math.max(0, (now - new Date(t)) / 1000);
  if (s < 1) return "just now";
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}

// fmtSeconds renders a span of seconds with a unit that suits its size.
export function fmtSeconds(s) {
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
  const rest = Math.round(s % 60);
  return Math.floor(s / 60) + (rest ? " m " + rest + " s" : " min");
}

export const shortId = (id) => id.slice(-12);

// pool runs fn over items, at most n at a time: the browser allows only a
// few connections per host over HTTP/1.1, and the live streams need some.
export async function pool(items, n, fn) {
  const queue = [...items];
  const worker = async () => {
    while (queue.length) await fn(queue.shift());
  };
  await Promise.all(Array.from({ length: Math.min(n, queue.length) }, worker));
}
