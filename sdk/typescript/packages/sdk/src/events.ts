import type { Event as EventMessage } from "./gen/runnel/v1/runnel_pb.js";

/**
 * The place of an event in the engine's log. Opaque: keep it and pass it as
 * `after` to resume a subscription right after that event.
 */
export type Position = string;

/** Run events: the run's status changes. The last four end the run. */
export type RunEventType = "run.started" | "run.completed" | "run.failed" | "run.cancelled" | "run.timed_out";
/** Step events: a step attempt's status changes, and the data it streamed. */
export type StepEventType =
  | "step.started"
  | "step.completed"
  | "step.failed"
  | "step.cancelled"
  | "step.timed_out"
  | "step.stream"
  | "step.stream_closed";
/** Every kind of event of a run's stream. */
export type EventType = RunEventType | StepEventType;

/** The event types that end a run. */
export const terminalEventTypes: readonly RunEventType[] = ["run.completed", "run.failed", "run.cancelled", "run.timed_out"];

/** isTerminal reports whether events of this type end their run. */
export function isTerminal(type: string): boolean {
  return type === "run.completed" || type === "run.failed" || type === "run.cancelled" || type === "run.timed_out";
}

interface EventBase {
  /** Where the event is in the log; resume after it with `after`. */
  readonly position: Position;
  /** The run the event belongs to (a metadata stream follows many). */
  readonly runId: string;
  /** The run's workflow. */
  readonly workflow: string;
  /** When the engine recorded the event. */
  readonly time: Date;
  /** The event's details as the engine sent them (output, error, …). */
  readonly data: Readonly<Record<string, unknown>>;
}

interface StepEventBase extends EventBase {
  /** The step's name in its workflow. */
  readonly step: string;
  /** The step run's id, the same for all its attempts. */
  readonly stepRunId: string;
  /** The attempt, from 1: a retry's events are told apart by it. */
  readonly attempt: number;
}

/** The run's first step started. */
export interface RunStartedEvent extends EventBase {
  readonly type: "run.started";
}
/** The run completed; `output` holds its steps' outputs by step name. */
export interface RunCompletedEvent extends EventBase {
  readonly type: "run.completed";
  readonly output: unknown;
}
/** The run failed, was cancelled or timed out. */
export interface RunEndedEvent extends EventBase {
  readonly type: "run.failed" | "run.cancelled" | "run.timed_out";
  readonly error: string;
}
/** A step attempt started on a worker. */
export interface StepStartedEvent extends StepEventBase {
  readonly type: "step.started";
}
/** A step attempt completed with `output`. */
export interface StepCompletedEvent extends StepEventBase {
  readonly type: "step.completed";
  readonly output: unknown;
}
/** A step attempt failed, was cancelled or timed out; `retrying` when another attempt follows. */
export interface StepEndedEvent extends StepEventBase {
  readonly type: "step.failed" | "step.cancelled" | "step.timed_out";
  readonly error: string;
  readonly retrying: boolean;
}
/** Data a step put on the stream (`ctx.putStream`). */
export interface StepStreamEvent extends StepEventBase {
  readonly type: "step.stream";
  /** The named stream it was put on; "" for the run's default stream. */
  readonly stream: string;
  /** The bytes the step put, up to 4 MiB. */
  readonly payload: Uint8Array;
  /** The payload decoded as UTF-8 text. */
  text(): string;
}

/** A step declared one of its streams finished (`ctx.closeStream`). */
export interface StepStreamClosedEvent extends StepEventBase {
  readonly type: "step.stream_closed";
  /** The closed stream; "" for the run's default stream. */
  readonly stream: string;
}

/**
 * One event of a run's stream: a discriminated union on `type`.
 *
 * ```ts
 * for await (const ev of runnel.listener.stream(runId)) {
 *   if (ev.type === "step.stream") process.stdout.write(ev.text());
 * }
 * ```
 */
export type RunnelEvent =
  | RunStartedEvent
  | RunCompletedEvent
  | RunEndedEvent
  | StepStartedEvent
  | StepCompletedEvent
  | StepEndedEvent
  | StepStreamEvent
  | StepStreamClosedEvent;

const utf8 = new TextDecoder();

/**
 * StreamEventImpl is a step.stream event. A class, not an object spread,
 * because a replay makes hundreds of thousands of them a second.
 */
class StreamEventImpl implements StepStreamEvent {
  readonly type = "step.stream";
  constructor(
    readonly position: string,
    readonly runId: string,
    readonly workflow: string,
    readonly step: string,
    readonly stepRunId: string,
    readonly attempt: number,
    readonly stream: string,
    readonly payload: Uint8Array,
    readonly time: Date,
    readonly data: Readonly<Record<string, unknown>>,
  ) {}

  text(): string {
    return utf8.decode(this.payload);
  }
}

/** The fields every event has, decoded from either wire format. */
export interface EventFields {
  position: string;
  type: string;
  runId: string;
  workflow: string;
  step: string;
  stepRunId: string;
  attempt: number;
  stream: string;
  payload: Uint8Array;
  data: Record<string, unknown>;
  time: Date;
}

const empty = new Uint8Array(0);
const noData: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/** makeEvent builds the typed event from its fields. */
export function makeEvent(f: EventFields): RunnelEvent {
  if (f.type === "step.stream") {
    return new StreamEventImpl(f.position, f.runId, f.workflow, f.step, f.stepRunId, f.attempt, f.stream, f.payload, f.time, f.data);
  }
  const base = { position: f.position, runId: f.runId, workflow: f.workflow, time: f.time, data: f.data };
  const step = { ...base, step: f.step, stepRunId: f.stepRunId, attempt: f.attempt };
  const d = f.data;
  switch (f.type) {
    case "step.started":
      return { ...step, type: f.type };
    case "step.stream_closed":
      return { ...step, type: f.type, stream: f.stream };
    case "step.completed":
      return { ...step, type: f.type, output: d["output"] ?? null };
    case "step.failed":
    case "step.cancelled":
    case "step.timed_out":
      return { ...step, type: f.type, error: String(d["error"] ?? ""), retrying: d["retrying"] === true };
    case "run.completed":
      return { ...base, type: f.type, output: d["output"] ?? null };
    case "run.failed":
    case "run.cancelled":
    case "run.timed_out":
      return { ...base, type: f.type, error: String(d["error"] ?? "") };
    default:
      // run.started, and types a newer engine may add: keep them visible.
      return { ...base, type: f.type as "run.started" };
  }
}

function parseData(bytes: Uint8Array): Record<string, unknown> {
  if (bytes.length === 0) return noData;
  try {
    const v: unknown = JSON.parse(utf8.decode(bytes));
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : noData;
  } catch {
    return noData;
  }
}

/** fromMessage decodes an event of the RPC protocol. */
export function fromMessage(e: EventMessage): RunnelEvent {
  return makeEvent({
    position: e.position,
    type: e.type,
    runId: e.runId,
    workflow: e.workflow,
    step: e.step,
    stepRunId: e.stepRunId,
    attempt: e.attempt,
    stream: e.stream,
    payload: e.payload.length ? e.payload : empty,
    data: parseData(e.data),
    time: new Date(Number(e.timeUs) / 1000),
  });
}

/** fromSSE decodes an SSE message of the HTTP API (`id`, `event`, `data`). */
export function fromSSE(id: string, type: string, json: string): RunnelEvent {
  const m = JSON.parse(json) as Record<string, unknown>;
  let payload: Uint8Array = empty;
  if (typeof m["payload"] === "string") {
    payload = m["encoding"] === "base64" ? base64ToBytes(m["payload"]) : new TextEncoder().encode(m["payload"]);
  }
  const { payload: _p, encoding: _e, runId, workflow, step, stepRunId, attempt, stream, timestamp, type: _t, ...data } = m;
  return makeEvent({
    position: id,
    type: typeof m["type"] === "string" ? m["type"] : type,
    runId: String(runId ?? ""),
    workflow: String(workflow ?? ""),
    step: String(step ?? ""),
    stepRunId: String(stepRunId ?? ""),
    attempt: typeof attempt === "number" ? attempt : 0,
    stream: typeof stream === "string" ? stream : "",
    payload,
    data,
    time: typeof timestamp === "string" ? new Date(timestamp) : new Date(0),
  });
}

export function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
