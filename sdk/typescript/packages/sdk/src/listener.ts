import { Backoff, sleep } from "./backoff.js";
import type { Connection } from "./connection.js";
import { isTransient, RunnelError, toRunnelError } from "./errors.js";
import { DEFAULT_STREAM, streamName } from "./worker/stream.js";
import { fromMessage, fromSSE, isTerminal, terminalEventTypes, type EventType, type Position, type RunnelEvent } from "./events.js";

/** Where a subscription starts and what it delivers. */
export interface StreamOptions {
  /** Resume right after this position (from an earlier event of the same stream). Wins over `from`. */
  after?: Position;
  /**
   * `"start"` (default): the whole stream, then live; `"now"`: only new
   * events; `"latest"` (run streams): from the run's newest stream event
   * (of the chosen `streams`), that event included.
   */
  from?: "start" | "now" | "latest";
  /** Only these event types. A run stream still ends with the run. */
  types?: readonly EventType[];
  /**
   * Run streams: only the stream events (`step.stream`,
   * `step.stream_closed`) of these named streams (`"default"` is the
   * unnamed one); other events still arrive.
   */
  streams?: readonly string[];
  /** Stops the subscription: the iteration ends by throwing the signal's reason. */
  signal?: AbortSignal;
  /**
   * Browsers: keep the last delivered position in sessionStorage and, after
   * a page reload, resume right after it (it wins over `after`). `true`
   * derives the key from what is followed; a string is the key.
   */
  remember?: boolean | string;
}

/** How a listener reaches the engine's event streams. */
export type StreamVia = "rpc" | "sse";

/** One message of a subscription, whatever the wire. */
interface Batch {
  events: RunnelEvent[];
  /** Resume point after this message ("" if none). */
  position: string;
  /** The run ended: every event up to its terminal one was delivered. */
  runEnded: boolean;
}

interface Target {
  what: string;
  endsWithRun: boolean;
  rememberKey: string;
  rpc(conn: Connection, from: string, types: string[], signal: AbortSignal): AsyncIterable<Batch>;
  ssePath: string;
}

/**
 * A subscription: an async iterable of events that also tells the last
 * position it delivered (keep it to resume later with `after`).
 */
export interface Subscription extends AsyncIterable<RunnelEvent> {
  /** The position of the last event delivered ("" before the first). */
  readonly position: Position;
}

const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 2000;
const MAX_EMPTY_ENDS = 3;

/** Follows runs' event streams. Use `runnel.listener`. */
export class Listener {
  readonly #conn: Connection;
  readonly #via: StreamVia;

  /** @internal */
  constructor(conn: Connection, via: StreamVia) {
    this.#conn = conn;
    this.#via = via;
  }

  /**
   * Every event of a run, in order, from its start unless `after` or `from`
   * say otherwise. It follows the run live and ends after its terminal
   * event (at once, after the replay, for a finished run).
   *
   * It reconnects by itself when the connection drops or the engine
   * restarts, resuming after the last event delivered: nothing is skipped
   * or repeated. An error that retrying cannot cure (`not_found`,
   * `invalid_argument` for a bad position, `unauthenticated`,
   * `permission_denied`) ends the iteration by throwing a RunnelError.
   * Breaking out of the loop closes the subscription.
   */
  stream(runId: string, options: StreamOptions = {}): Subscription {
    const streams = options.streams?.map((name) => streamName(name) || DEFAULT_STREAM) ?? [];
    const streamsQuery = streams.length ? `${new URLSearchParams({ streams: streams.join(",") })}&` : "";
    return this.#subscribe(
      {
        what: `run ${runId}`,
        endsWithRun: true,
        rememberKey: `runnel:run:${runId}`,
        rpc: (conn, from, types, signal) =>
          batches(conn.run.subscribe({ runId, from, types, streams }, { signal })),
        ssePath: `/api/v1/runs/${encodeURIComponent(runId)}/stream?${streamsQuery}`,
      },
      options,
    );
  }

  /**
   * Every event of every run whose additional metadata has `key` = `value`:
   * parents, children, grandchildren and runs created later, in one order.
   * It never ends by itself: stop it with `signal` or by breaking out.
   */
  streamByAdditionalMetadata(key: string, value: string, options: StreamOptions = {}): Subscription {
    if (options.streams?.length) {
      throw new RunnelError("invalid_argument", "the streams option is for run streams (listener.stream), not metadata subscriptions", { context: "subscribe" });
    }
    return this.#subscribe(
      {
        what: `runs with ${key}=${value}`,
        endsWithRun: false,
        rememberKey: `runnel:meta:${encodeURIComponent(key)}=${encodeURIComponent(value)}`,
        rpc: (conn, from, types, signal) =>
          batches(conn.run.subscribeMetadata({ key, value, from, types }, { signal })),
        ssePath: `/api/v1/stream?${new URLSearchParams({ metaKey: key, metaValue: value })}&`,
      },
      options,
    );
  }

  #subscribe(target: Target, options: StreamOptions): Subscription {
    const conn = this.#conn;
    const via = this.#via;
    const state = { position: "" };
    const storage = rememberStorage(options.remember, target.rememberKey);
    return {
      get position() {
        return state.position;
      },
      [Symbol.asyncIterator]() {
        return follow(conn, via, target, options, state, storage)[Symbol.asyncIterator]();
      },
    };
  }
}

async function* batches(stream: AsyncIterable<{ events: Parameters<typeof fromMessage>[0][]; position: string; runEnded: boolean }>): AsyncIterable<Batch> {
  for await (const msg of stream) {
    yield { events: msg.events.map(fromMessage), position: msg.position, runEnded: msg.runEnded };
  }
}

interface PositionStore {
  get(): string;
  set(p: string): void;
  forget(): void;
}

function rememberStorage(remember: boolean | string | undefined, key: string): PositionStore | undefined {
  if (!remember) return undefined;
  const k = typeof remember === "string" ? remember : key;
  const ss = (globalThis as { sessionStorage?: Storage }).sessionStorage;
  if (!ss) return undefined;
  return {
    get: () => ss.getItem(k) ?? "",
    set: (p) => {
      try {
        ss.setItem(k, p);
      } catch {
        // storage full or disabled: resuming after a reload is best effort
      }
    },
    forget: () => ss.removeItem(k),
  };
}

class StreamEnded extends Error {
  constructor() {
    super("the engine ended the subscription early");
  }
}

/** follow runs one subscription, reconnecting as needed. */
async function* follow(
  conn: Connection,
  via: StreamVia,
  target: Target,
  options: StreamOptions,
  state: { position: string },
  storage: PositionStore | undefined,
): AsyncGenerator<RunnelEvent, void, undefined> {
  const wanted = options.types?.length ? new Set<string>(options.types) : undefined;
  let types: string[] = [];
  if (wanted) {
    // Ask for the terminal run events too, so the subscription knows the
    // run ended and tells that from a dropped connection.
    types = [...new Set<string>([...wanted, ...(target.endsWithRun ? terminalEventTypes : [])])];
  }
  const remembered = storage?.get() ?? "";
  // Iterating a subscription again resumes after what it delivered.
  let from = remembered || state.position || options.after || (options.from === "now" || options.from === "latest" ? options.from : "");
  const bo = new Backoff(RETRY_BASE_MS, RETRY_MAX_MS);
  let emptyEnds = 0;
  let authRetried = false;
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(options.signal!.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      if (ctl.signal.aborted) throw ctl.signal.reason;
      const before = from;
      let progressed = false;
      let err: unknown;
      try {
        const source = via === "sse" || !conn.rpc ? sse(conn, target, from, types, ctl.signal) : target.rpc(conn, from, types, ctl.signal);
        for await (const batch of source) {
          progressed = true;
          authRetried = false;
          for (const ev of batch.events) {
            if (ev.position) from = ev.position;
            if (!wanted || wanted.has(ev.type)) {
              yield ev;
              state.position = ev.position;
              storage?.set(ev.position);
            }
            if (target.endsWithRun && isTerminal(ev.type)) return;
          }
          // A message's position covers events filtered out by type and, in
          // the first message, resolves "now" to a real position.
          if (batch.position) from = batch.position;
          if (batch.runEnded) return;
        }
        err = new StreamEnded();
      } catch (e) {
        err = e instanceof StreamEnded ? e : toRunnelError(e, `subscribe to ${target.what}`);
      }
      if (ctl.signal.aborted) throw ctl.signal.reason;
      if (err instanceof StreamEnded) {
        // The engine ends a run subscription "from now" at once on a run
        // that has already ended: nothing comes after now.
        if (from === "now" && target.endsWithRun) return;
        if (from !== before) emptyEnds = 0;
        else if (++emptyEnds >= MAX_EMPTY_ENDS) {
          throw new RunnelError("unavailable", `${err.message} ${emptyEnds} times in a row`, { context: `subscribe to ${target.what}` });
        }
      } else if (
        conn.refreshable && !authRetried && err instanceof RunnelError &&
        (err.code === "unauthenticated" || err.code === "permission_denied")
      ) {
        // Perhaps the token expired: one more try with a fresh one from
        // the token function (it is called before each connection).
        authRetried = true;
        continue;
      } else if (!retryable(err)) {
        if (storage && remembered && from === remembered && err instanceof RunnelError && err.code === "invalid_argument") {
          storage.forget(); // a remembered position the engine refuses
        }
        throw err;
      }
      if (progressed) bo.reset();
      await sleep(bo.next(), ctl.signal);
    }
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    ctl.abort();
  }
}

/** retryable: the connection dropped, the engine restarted or shed a slow subscriber. */
function retryable(err: unknown): boolean {
  if (isTransient(err)) return true;
  return err instanceof RunnelError && err.code === "resource_exhausted" && err.remote;
}

/** sse follows the HTTP API's Server-Sent Events stream (browsers, or `streamVia: "sse"`). */
async function* sse(conn: Connection, target: Target, from: string, types: string[], signal: AbortSignal): AsyncIterable<Batch> {
  const q = new URLSearchParams();
  if (from === "now" || from === "latest") q.set("from", from);
  else if (from) q.set("after", from);
  if (types.length) q.set("types", types.join(","));
  const res = await conn.fetch(target.ssePath + q, { signal, headers: { Accept: "text/event-stream" }, cache: "no-store" }, `subscribe to ${target.what}`);
  if (!res.body) throw new RunnelError("unavailable", "no response body");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let id = "";
  let type = "";
  let data = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      const out: RunnelEvent[] = [];
      let ended = false;
      let start = 0;
      let nl: number;
      while ((nl = buf.indexOf("\n", start)) >= 0) {
        let line = buf.slice(start, nl);
        start = nl + 1;
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (type === "end") ended = true;
          else if (data) out.push(fromSSE(id, type, data));
          type = data = "";
          continue;
        }
        if (line.charCodeAt(0) === 58 /* : */) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.charCodeAt(0) === 32) val = val.slice(1);
        if (field === "id") id = val;
        else if (field === "event") type = val;
        else if (field === "data") data = data ? data + "\n" + val : val;
      }
      buf = buf.slice(start);
      if (out.length || ended) yield { events: out, position: "", runEnded: ended };
      if (ended) return;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
