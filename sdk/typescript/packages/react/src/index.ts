/**
 * React hooks over `@runnel/sdk`: follow a run, or every run with a
 * metadata pair, from a component.
 *
 * ```tsx
 * const { text, status, error } = useRunStream(runId, { host, getToken });
 * return <pre>{text}{status === "running" ? "…" : ""}</pre>;
 * ```
 *
 * One subscription per mounted hook (React strict mode's double effects
 * open one), closed on unmount; nothing touches `window` during render, so
 * the hooks render their empty state on a server.
 *
 * @module
 */
import { useEffect, useRef, useState } from "react";
import { Runnel, type EventType, type Position, type RunnelEvent, type Subscription, type TokenSource } from "@runnel/sdk";

/** Options of the hooks. */
export interface StreamHookOptions {
  /** The engine's URL (default: the page's origin). */
  host?: string;
  /** A browser token for the run or metadata pair. */
  token?: string;
  /** Called before each (re)connection for a fresh token; wins over `token`. */
  getToken?: () => string | Promise<string>;
  /** Only these event types (a run stream still ends with the run). */
  types?: readonly EventType[];
  /** Start right after this position instead of at the beginning. */
  after?: Position;
  /**
   * Keep the last position and the text shown in sessionStorage, so that
   * after a page reload the hook shows the text again and resumes right
   * after that position, without fetching the earlier events again (they
   * are not in `events`). Default false: a reload replays from the start.
   */
  remember?: boolean;
  /** A client to use instead of one the hook makes from host and token. */
  client?: Runnel;
}

/** What a run is doing, as its stream tells. */
export type RunStatus = "idle" | "connecting" | "running" | "completed" | "failed" | "cancelled" | "timed_out";

/** The state of a stream hook. */
export interface StreamState {
  /** The events delivered so far, in order. */
  events: readonly RunnelEvent[];
  /** The `step.stream` payloads of those events, decoded as UTF-8 and joined. */
  text: string;
  /** The run's status (for a metadata stream: "running" while connected). */
  status: RunStatus;
  /** Why the subscription ended, if it failed. */
  error: Error | undefined;
  /** The position of the last event delivered ("" before the first). */
  position: Position;
}

const initial: StreamState = { events: [], text: "", status: "idle", error: undefined, position: "" };

type Open = (client: Runnel, after: Position | undefined, signal: AbortSignal) => Subscription;

function statusOf(ev: RunnelEvent, prev: RunStatus): RunStatus {
  switch (ev.type) {
    case "run.completed":
      return "completed";
    case "run.failed":
      return "failed";
    case "run.cancelled":
      return "cancelled";
    case "run.timed_out":
      return "timed_out";
    default:
      return prev === "connecting" || prev === "idle" ? "running" : prev;
  }
}

/** One store per hook: kept outside React state so a remount resumes it. */
function useStream(key: string | undefined, rememberKey: string, open: Open, options: StreamHookOptions, endsWithRun: boolean): StreamState {
  const [state, setState] = useState<StreamState>(initial);
  const opts = useRef(options);
  opts.current = options;
  const openRef = useRef(open);
  openRef.current = open;

  useEffect(() => {
    if (!key) {
      setState(initial);
      return;
    }
    const o = opts.current;
    const ctl = new AbortController();
    let started = false;
    const storage = o.remember ? sessionStore() : undefined;
    const saved = storage ? readSaved(storage, rememberKey) : undefined;
    let cur: StreamState = { ...initial, status: "connecting", text: saved?.text ?? "", position: saved?.position ?? "" };
    setState(cur);
    // Start after the current task: React strict mode mounts, unmounts and
    // mounts again synchronously, so only the last mount subscribes.
    const timer = setTimeout(() => {
      started = true;
      void (async () => {
        const token: TokenSource | undefined = o.getToken ? () => opts.current.getToken!() : o.token;
        const client = o.client ?? new Runnel({ ...(o.host ? { host: o.host } : {}), ...(token !== undefined ? { token } : {}) });
        const sub = openRef.current(client, saved?.position || o.after || undefined, ctl.signal);
        let pending: RunnelEvent[] = [];
        let flushQueued = false;
        const flush = () => {
          flushQueued = false;
          if (!pending.length || ctl.signal.aborted) return;
          const evs = pending;
          pending = [];
          let text = cur.text;
          let status = cur.status;
          for (const ev of evs) {
            if (ev.type === "step.stream") text += ev.text();
            status = statusOf(ev, status);
          }
          cur = { events: [...cur.events, ...evs], text, status, error: undefined, position: evs[evs.length - 1]!.position };
          if (storage) writeSaved(storage, rememberKey, { text: cur.text, position: cur.position });
          setState(cur);
        };
        try {
          for await (const ev of sub) {
            pending.push(ev);
            // Batch the events of one read into one render.
            if (!flushQueued) {
              flushQueued = true;
              queueMicrotask(flush);
            }
          }
          flush();
          if (!endsWithRun) return;
        } catch (err) {
          flush();
          if (ctl.signal.aborted) return;
          cur = { ...cur, status: cur.status === "running" || cur.status === "connecting" ? "failed" : cur.status, error: err instanceof Error ? err : new Error(String(err)) };
          setState(cur);
        }
      })();
    }, 0);
    return () => {
      if (!started) clearTimeout(timer);
      ctl.abort(new DOMException("unmounted", "AbortError"));
    };
    // The subscription depends on what is followed and where, not on the
    // identity of option objects or functions (read through refs).
  }, [key, rememberKey, options.host, options.token, options.after, options.types?.join(","), options.remember, options.client]);

  return state;
}

interface Saved {
  text: string;
  position: string;
}

function sessionStore(): Storage | undefined {
  try {
    return (globalThis as { sessionStorage?: Storage }).sessionStorage;
  } catch {
    return undefined;
  }
}

function readSaved(s: Storage, key: string): Saved | undefined {
  try {
    const v = JSON.parse(s.getItem(key) ?? "null") as Saved | null;
    return v && typeof v.text === "string" && typeof v.position === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

function writeSaved(s: Storage, key: string, v: Saved): void {
  try {
    s.setItem(key, JSON.stringify(v));
  } catch {
    // storage full or disabled: resuming after a reload is best effort
  }
}

/**
 * Follows one run: its events so far, the text its steps streamed, its
 * status, the error that ended the subscription and the last position.
 * `runId` undefined (or "") follows nothing.
 */
export function useRunStream(runId: string | undefined, options: StreamHookOptions = {}): StreamState {
  return useStream(
    runId,
    `runnel:react:run:${runId ?? ""}`,
    (client, after, signal) =>
      client.listener.stream(runId!, { ...(after ? { after } : {}), ...(options.types ? { types: options.types } : {}), signal }),
    options,
    true,
  );
}

/**
 * Follows every run whose additional metadata has `key` = `value` (runs
 * that exist, runs created later, children). It never ends by itself;
 * `status` is "running" once events arrive.
 */
export function useMetadataStream(key: string | undefined, value: string | undefined, options: StreamHookOptions = {}): StreamState {
  return useStream(
    key && value ? `${key}=${value}` : undefined,
    `runnel:react:meta:${encodeURIComponent(key ?? "")}=${encodeURIComponent(value ?? "")}`,
    (client, after, signal) =>
      client.listener.streamByAdditionalMetadata(key!, value!, { ...(after ? { after } : {}), ...(options.types ? { types: options.types } : {}), signal }),
    options,
    false,
  );
}

/** A run's status and its steps' statuses, from its stream. */
export interface RunState {
  status: RunStatus;
  /** Each step's latest attempt and status ("started", "completed", "failed", …). */
  steps: Readonly<Record<string, { attempt: number; status: string }>>;
  /** The run's output once it completed. */
  output: unknown;
  /** The run's or the subscription's error. */
  error: Error | undefined;
}

const statusTypes: readonly EventType[] = [
  "run.started", "run.completed", "run.failed", "run.cancelled", "run.timed_out",
  "step.started", "step.completed", "step.failed", "step.cancelled", "step.timed_out",
];

/** Follows a run's status changes (not its stream data). */
export function useRun(runId: string | undefined, options: Omit<StreamHookOptions, "types"> = {}): RunState {
  const s = useRunStream(runId, { ...options, types: statusTypes });
  const steps: Record<string, { attempt: number; status: string }> = {};
  let output: unknown = undefined;
  let error = s.error;
  for (const ev of s.events) {
    if ("step" in ev) steps[ev.step] = { attempt: ev.attempt, status: ev.type.slice("step.".length) };
    if (ev.type === "run.completed") output = ev.output;
    if (ev.type === "run.failed" || ev.type === "run.cancelled" || ev.type === "run.timed_out") error = new Error(ev.error);
  }
  return { status: s.status, steps, output, error };
}
