// Runnel browser client: follow a run's events, or every run with an
// additional-metadata pair, live from a web page, with callbacks. Part of
// the browser build of @runnel/sdk, which the engine serves at
// /sdk/runnel.js (built by `npm run build:module` into
// internal/browsersdk/runnel.js):
//
//   import { subscribe } from "http://127.0.0.1:7077/sdk/runnel.js";
//   const sub = subscribe(runId, { token, onEvent: (ev) => show(ev.payload) });
//
// It speaks Runnel's Server-Sent Events format (docs/http-api.md) over the
// browser's EventSource. The same module also exports the Runnel client,
// whose listener is an async iterable (docs/typescript.md).

/**
 * A run event as delivered to `onEvent`: the SSE message's JSON data, plus
 * its position.
 *
 * @typedef {object} RunnelEvent
 * @property {string} position Opaque position of the event in its log. Pass
 *   it as `after` to resume right after this event.
 * @property {string} type `run.started`, `run.completed`, `run.failed`,
 *   `run.cancelled`, `run.timed_out`, `step.started`, `step.completed`,
 *   `step.failed`, `step.cancelled`, `step.timed_out` or `step.stream`.
 * @property {string} runId
 * @property {string} workflow
 * @property {string} timestamp RFC 3339 time the event was recorded.
 * @property {string} [stepRunId] Step events only.
 * @property {string} [step] Step events only.
 * @property {number} [attempt] Step events only: the attempt (from 1), so a
 *   retry's stream can be told from the failed attempt's.
 * @property {string|Uint8Array} [payload] `step.stream` only: the text a
 *   step streamed, or its bytes as a Uint8Array when they are not UTF-8
 *   (the wire sends those as base64 with `"encoding": "base64"`, kept on
 *   the event).
 * @property {string} [encoding] `"base64"` when the payload was binary.
 * @property {*} [output] `step.completed` and `run.completed`.
 * @property {string} [error] Failures.
 */

/**
 * The state of a subscription, as reported to `onStatus`:
 *
 * - `"connecting"`: opening the stream for the first time.
 * - `"live"`: the stream is open; events arrive as they happen (first the
 *   ones already recorded after the start point).
 * - `"reconnecting"`: the connection dropped or was refused for a reason
 *   that may pass (network, 5xx, 408, 429); the client retries and resumes
 *   after the last delivered event.
 * - `"ended"`: a run stream is complete (the server sent `event: end` after
 *   the run's terminal event). Final; a metadata stream never ends.
 * - `"error"`: the server refused the stream for a reason that will not
 *   heal (any other 4xx: bad or expired token, unknown run, invalid
 *   position). Final; `detail` says why.
 *
 * @typedef {"connecting"|"live"|"reconnecting"|"ended"|"error"} Status
 */

/**
 * Why a subscription failed, passed with the `"error"` status.
 *
 * @typedef {object} ErrorDetail
 * @property {number} status HTTP status of the refusal.
 * @property {string} code The API's error code (`unauthenticated`,
 *   `not_found`, …), or `http_<status>` when the body had none.
 * @property {string} message The API's message.
 */

/**
 * Options of {@link subscribe}.
 *
 * @typedef {object} SubscribeOptions
 * @property {string} [base] Engine URL, e.g. `"http://127.0.0.1:7077"`.
 *   Defaults to where this module was loaded from. Not used with a
 *   `{url}` target.
 * @property {string|(() => string|Promise<string>)} [token] Token sent as
 *   `?token=` (EventSource cannot set headers): a read-only browser token
 *   minted by your backend (`POST /api/v1/tokens`), never an API token in a
 *   public page. A function is called before each connection this client
 *   opens itself, so it can mint a fresh token; when the server answers 401
 *   or 403 it is called once more before giving up. The engine ends every
 *   stream when its token expires (an `event: error` message, code
 *   `unauthenticated`): with a function, the client gets a new token and
 *   resumes right after the last delivered event; with a string, the
 *   subscription ends in the `"error"` status.
 * @property {string} [after] Start right after this position. Without it
 *   the stream starts at the beginning of the run.
 * @property {"start"|"now"} [from] `"now"` starts with new events only
 *   (ignored when resuming from `after` or a remembered position).
 * @property {string[]|string} [types] Keep only these event types
 *   (array, or comma-separated). A run stream still ends after the run.
 * @property {(event: RunnelEvent) => void} [onEvent] Called once per event,
 *   in order. Its position counts as delivered when it returns.
 * @property {(status: Status, detail?: ErrorDetail) => void} [onStatus]
 *   Called on each status change.
 * @property {boolean|string} [remember] Opt-in: keep the last delivered
 *   position in sessionStorage and, on a page reload, resume right after
 *   it (it wins over `after`), so the page loses and repeats nothing. With
 *   `true` the key is derived from the target (one per run, metadata pair
 *   or URL); a string is the key itself (to keep two subscriptions to one
 *   run apart). The page must keep what it already showed across the
 *   reload itself (sessionStorage, say). A remembered position the server
 *   refuses (400) is forgotten.
 */

/**
 * What to follow: a run id; a metadata pair (every run whose additional
 * metadata holds it, children and later runs included; never ends); or the
 * URL of any endpoint serving Runnel's SSE format, e.g. your backend's,
 * written with the Go `sse` package (relative URLs resolve against the
 * page).
 *
 * @typedef {string|{metaKey: string, metaValue: string}|{url: string}} Target
 */

/**
 * A live subscription.
 *
 * @typedef {object} Subscription
 * @property {() => void} close Stop: close the stream, cancel any retry;
 *   no callback is called after it.
 * @property {Status} status The last reported status.
 * @property {string} position The last delivered position ("" before
 *   the first event).
 */

const EVENT_TYPES = [
  "run.started", "run.completed", "run.failed", "run.cancelled", "run.timed_out",
  "step.started", "step.completed", "step.failed", "step.cancelled", "step.timed_out",
  "step.stream",
];

// Waits between reconnection attempts this client makes itself (EventSource
// has its own for dropped connections): doubling, at most 30 s.
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;

// Where this module was served from: the engine, unless a backend re-serves
// it. A path prefix before /sdk/ (a reverse proxy's) is kept.
function defaultBase() {
  const self = new URL(import.meta.url);
  const suffix = "/sdk/runnel.js";
  const path = self.pathname.endsWith(suffix) ? self.pathname.slice(0, -suffix.length) : "";
  return self.origin + path;
}

/**
 * Follow a run, a metadata pair, or an SSE endpoint, and deliver each event
 * once, in order, to `onEvent`.
 *
 * The browser's EventSource reconnects after a dropped connection and
 * resumes after the last event it got (Last-Event-ID). EventSource does not
 * expose HTTP status codes, so when it gives up (the server answered
 * something other than a 200 event stream) this client asks the same URL
 * once with `fetch` to learn the status: a 4xx other than 408 and 429 is
 * final (`"error"`, with the server's message), anything else (5xx, network
 * failure) is retried with backoff, in a new EventSource that resumes with
 * `?after=` the last delivered position.
 *
 * @example
 * import { subscribe } from "http://127.0.0.1:7077/sdk/runnel.js";
 * const sub = subscribe(runId, {
 *   token: browserToken,
 *   types: ["step.stream"],
 *   remember: true,
 *   onEvent: (ev) => { output.textContent += ev.payload; },
 *   onStatus: (status, detail) => { state.textContent = detail ? detail.message : status; },
 * });
 * // later: sub.close();
 *
 * @param {Target} target What to follow.
 * @param {SubscribeOptions} [options]
 * @returns {Subscription}
 * @throws {TypeError} On a malformed target or option, naming it.
 */
export function subscribe(target, options = {}) {
  if (typeof EventSource === "undefined") {
    throw new TypeError("runnel: subscribe needs EventSource (a browser)");
  }
  const opts = checkOptions(options);
  const endpoint = resolveTarget(target, opts.base);
  const storageKey = opts.remember === true ? endpoint.key : opts.remember || "";

  let position = "";
  if (storageKey) position = recall(storageKey) || "";
  const resumedFromStorage = position !== "";
  if (!position) position = opts.after;

  let es = null;
  let status = "";
  let closed = false;
  let retryTimer = 0;
  let retryMs = RETRY_FIRST_MS;
  let authRetried = false;
  let lastToken = ""; // the token of the last connection
  let probe = null; // AbortController of a status probe in flight

  // stop releases the stream, a pending retry and a probe in flight.
  const stop = () => {
    clearTimeout(retryTimer);
    if (probe) probe.abort();
    probe = null;
    if (es) es.close();
    es = null;
  };

  const report = (next, detail) => {
    if (closed || next === status) return;
    status = next;
    if (opts.onStatus) guard(() => opts.onStatus(next, detail));
  };

  // finish ends the subscription with a final status.
  const finish = (final, detail) => {
    stop();
    report(final, detail);
    closed = true;
  };

  const sub = {
    close() {
      closed = true;
      stop();
    },
    get status() { return status; },
    get position() { return position; },
  };

  const deliver = (e) => {
    if (closed) return;
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      // Not Runnel's format: nothing to deliver, but do not stop the stream.
      (globalThis.reportError || console.error)(new Error(`runnel: event ${e.type} at ${e.lastEventId}: data is not JSON`));
      return;
    }
    const event = decode(data, e.lastEventId);
    if (opts.onEvent) guard(() => opts.onEvent(event));
    if (e.lastEventId) {
      position = e.lastEventId;
      if (storageKey) store(storageKey, position);
    }
  };

  // streamURL is the stream's URL, resuming after the last delivered event.
  const streamURL = () => endpoint.url({ token: lastToken, after: position, from: opts.from, types: opts.types });

  const connect = async () => {
    if (closed) return;
    let token = "";
    try {
      token = typeof opts.token === "function" ? await opts.token() : opts.token;
    } catch (err) {
      // Getting a token is the page's own call (its backend): retry it
      // like a connection.
      (globalThis.reportError || console.error)(err);
      return retryLater();
    }
    if (closed) return;
    lastToken = token;
    const source = new EventSource(streamURL());
    es = source;
    source.onopen = () => {
      if (es !== source) return;
      retryMs = RETRY_FIRST_MS;
      authRetried = false;
      report("live");
    };
    for (const type of new Set([...EVENT_TYPES, ...opts.types, "message"])) {
      source.addEventListener(type, (e) => { if (es === source) deliver(e); });
    }
    source.addEventListener("end", () => {
      if (es !== source) return;
      // The run is over and every event arrived: close, or EventSource
      // would reconnect and be told so again.
      finish("ended");
    });
    source.onerror = (e) => {
      if (es !== source) return;
      if (typeof e.data === "string") {
        // The server ended the stream with a message (`event: error`),
        // e.g. because the token expired: the stream is over, not dropped.
        source.close();
        es = null;
        return serverError(e.data);
      }
      if (source.readyState === EventSource.CONNECTING) {
        // Dropped: EventSource reconnects by itself with Last-Event-ID.
        report("reconnecting");
        return;
      }
      // Given up: the server answered with an error (or not a stream).
      es = null;
      diagnose();
    };
  };

  // serverError handles an `event: error` message: a token that expired
  // is replaced (when the page gave a function to get one) and the stream
  // resumes right after the last delivered event; anything else is final.
  const serverError = (data) => {
    let e = {};
    try { e = JSON.parse(data).error || {}; } catch { /* not Runnel's format */ }
    const detail = {
      status: e.code === "unauthenticated" ? 401 : 0,
      code: typeof e.code === "string" ? e.code : "stream_error",
      message: typeof e.message === "string" ? e.message : "the server ended the stream with an error",
    };
    if (detail.code === "unauthenticated" && typeof opts.token === "function") {
      report("reconnecting");
      return connect();
    }
    finish("error", detail);
  };

  const retryLater = () => {
    if (closed) return;
    report("reconnecting");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  };

  // diagnose learns why EventSource gave up, asking for what the next
  // connection would, and decides whether that can heal.
  const diagnose = async () => {
    if (closed) return;
    const url = streamURL();
    const ctl = new AbortController();
    probe = ctl;
    let res;
    try {
      res = await fetch(url, { signal: ctl.signal, cache: "no-store", headers: { Accept: "text/event-stream" } });
    } catch {
      probe = null;
      return retryLater(); // network failure, or closed meanwhile
    }
    probe = null;
    if (closed) return ctl.abort();
    if (res.ok) {
      ctl.abort(); // we only wanted the status
      const type = res.headers.get("Content-Type") || "";
      if (!type.startsWith("text/event-stream")) {
        return finish("error", { status: res.status, code: "not_event_stream", message: `${url.split("?")[0]} answered ${type || "no Content-Type"}, not text/event-stream` });
      }
      return retryLater(); // it works again
    }
    const detail = await errorDetail(res);
    if (res.status >= 500 || res.status === 408 || res.status === 429) return retryLater();
    if ((res.status === 401 || res.status === 403) && typeof opts.token === "function" && !authRetried) {
      authRetried = true; // maybe expired: one more try with a fresh token
      return connect();
    }
    if (res.status === 400 && resumedFromStorage && storageKey) forget(storageKey);
    finish("error", detail);
  };

  report("connecting");
  connect();
  return sub;
}

// checkOptions validates options and fills in defaults.
function checkOptions(o) {
  if (o === null || typeof o !== "object") throw new TypeError("runnel: options must be an object");
  const known = new Set(["base", "token", "after", "from", "types", "onEvent", "onStatus", "remember"]);
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw new TypeError(`runnel: unknown option ${JSON.stringify(k)}`);
  }
  const str = (k) => {
    if (o[k] !== undefined && typeof o[k] !== "string") throw new TypeError(`runnel: option ${k} must be a string`);
    return o[k] || "";
  };
  const fn = (k) => {
    if (o[k] !== undefined && typeof o[k] !== "function") throw new TypeError(`runnel: option ${k} must be a function`);
    return o[k];
  };
  if (o.token !== undefined && typeof o.token !== "string" && typeof o.token !== "function") {
    throw new TypeError("runnel: option token must be a string or a function returning one");
  }
  const from = str("from");
  if (from && from !== "start" && from !== "now") throw new TypeError(`runnel: option from must be "start" or "now", not ${JSON.stringify(from)}`);
  let types = o.types === undefined ? [] : o.types;
  if (typeof types === "string") types = types.split(",");
  if (!Array.isArray(types) || types.some((t) => typeof t !== "string")) {
    throw new TypeError("runnel: option types must be an array of event type names or a comma-separated string");
  }
  types = types.map((t) => t.trim()).filter(Boolean);
  if (o.remember !== undefined && typeof o.remember !== "boolean" && (typeof o.remember !== "string" || !o.remember)) {
    throw new TypeError("runnel: option remember must be true, false or a non-empty sessionStorage key");
  }
  return {
    base: str("base") || defaultBase(),
    token: o.token || "",
    after: str("after"),
    from,
    types,
    onEvent: fn("onEvent"),
    onStatus: fn("onStatus"),
    remember: o.remember || false,
  };
}

// resolveTarget turns a target into its stream URL builder and its
// default sessionStorage key.
function resolveTarget(target, base) {
  let path, query = {}, key;
  if (typeof target === "string") {
    if (!target.trim()) throw new TypeError("runnel: run id is empty");
    path = "api/v1/runs/" + encodeURIComponent(target.trim()) + "/stream";
    key = "runnel:run:" + target.trim();
  } else if (target && typeof target === "object" && "url" in target) {
    if (typeof target.url !== "string" || !target.url) throw new TypeError("runnel: target url must be a non-empty string");
    const abs = new URL(target.url, document.baseURI);
    return { key: "runnel:url:" + abs.href, url: (params) => withParams(abs, params) };
  } else if (target && typeof target === "object" && ("metaKey" in target || "metaValue" in target)) {
    const { metaKey, metaValue } = target;
    if (typeof metaKey !== "string" || !metaKey) throw new TypeError("runnel: target metaKey must be a non-empty string");
    if (typeof metaValue !== "string") throw new TypeError("runnel: target metaValue must be a string");
    path = "api/v1/stream";
    query = { metaKey, metaValue };
    key = "runnel:meta:" + encodeURIComponent(metaKey) + "=" + encodeURIComponent(metaValue);
  } else {
    throw new TypeError("runnel: target must be a run id, {metaKey, metaValue} or {url}");
  }
  const abs = new URL(path + "?" + new URLSearchParams(query), base.endsWith("/") ? base : base + "/");
  return { key, url: (params) => withParams(abs, params) };
}

// withParams returns url with the subscription's query parameters set.
function withParams(url, { token, after, from, types }) {
  const u = new URL(url);
  const set = (k, v) => { if (v) u.searchParams.set(k, v); else u.searchParams.delete(k); };
  set("token", token);
  set("after", after);
  set("from", after ? "" : from);
  set("types", types.join(","));
  return u.href;
}

// decode turns SSE data into a RunnelEvent: base64 payloads become bytes.
function decode(data, position) {
  const event = Object.assign({}, data, { position });
  if (data.encoding === "base64" && typeof data.payload === "string") {
    const bin = atob(data.payload);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    event.payload = bytes;
  }
  return event;
}

// errorDetail reads the API's {"error": {code, message}} body, if any.
async function errorDetail(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const e = (body && body.error) || {};
  return {
    status: res.status,
    code: typeof e.code === "string" ? e.code : "http_" + res.status,
    message: typeof e.message === "string" ? e.message : `HTTP ${res.status} ${res.statusText}`.trim(),
  };
}

// guard runs a page callback; its exception is reported like an uncaught
// one, without breaking the stream.
function guard(fn) {
  try {
    fn();
  } catch (err) {
    (globalThis.reportError || console.error)(err);
  }
}

// sessionStorage can be missing or refuse (privacy modes, quota): then
// remembering silently does nothing, the stream itself still works.
function recall(key) {
  try { return sessionStorage.getItem(key); } catch { return null; }
}
function store(key, value) {
  try { sessionStorage.setItem(key, value); } catch { /* see recall */ }
}
function forget(key) {
  try { sessionStorage.removeItem(key); } catch { /* see recall */ }
}
