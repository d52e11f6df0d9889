import type { Run as RunMessage } from "./gen/runnel/v1/runnel_pb.js";
import { toRunnelError, RunnelError } from "./errors.js";
import { decodeJSON, encodeJSON, micros } from "./json.js";
import type { Connection } from "./connection.js";

/** A run's state. The last four are terminal. */
export type RunStatus = "queued" | "running" | "completed" | "failed" | "cancelled" | "timed_out";
/** A step run's state (of its current attempt). */
export type StepStatus = "pending" | "queued" | "running" | "completed" | "failed" | "cancelled" | "timed_out";

/** One execution of a workflow. */
export interface Run {
  readonly id: string;
  readonly workflow: string;
  readonly status: RunStatus;
  /** The run's input. */
  readonly input: unknown;
  /** Its steps' outputs by step name, once completed. */
  readonly output: unknown;
  /** Why it failed, timed out or was cancelled. */
  readonly error: string;
  readonly additionalMetadata: Readonly<Record<string, string>>;
  /** Set for a child run. */
  readonly parentRunId: string;
  readonly parentStepRunId: string;
  readonly createdAt: Date | null;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  /** Its step runs; `listRuns` may leave them out. */
  readonly steps: readonly StepRun[];
}

/** One step of a run. */
export interface StepRun {
  readonly id: string;
  readonly step: string;
  readonly parents: readonly string[];
  readonly status: StepStatus;
  /** The current attempt, from 1; 0 while it never ran. */
  readonly attempt: number;
  readonly output: unknown;
  readonly error: string;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly attempts: readonly StepAttempt[];
}

/** The record of one attempt of a step run. */
export interface StepAttempt {
  readonly attempt: number;
  readonly status: StepStatus;
  readonly workerId: string;
  readonly error: string;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

/** Options of `runWorkflow` and `events.push`. */
export interface RunOptions {
  /** String key/value metadata; child runs inherit it, metadata streams follow it. */
  additionalMetadata?: Record<string, string>;
  signal?: AbortSignal;
}

/** Filters of `listRuns`; unset fields do not filter. */
export interface ListRunsOptions {
  workflow?: string;
  status?: RunStatus;
  /** Runs whose additional metadata has this key with this value. */
  metadata?: { key: string; value: string };
  /** At most this many runs; the engine's default when unset. */
  limit?: number;
  /** Page backwards: runs created before the run with this id. */
  before?: string;
  signal?: AbortSignal;
}

/** What a browser token may read: one run, or every run with a metadata pair. */
export type BrowserTokenScope = { runId: string } | { metaKey: string; metaValue: string };

/** A minted browser token. */
export interface BrowserToken {
  readonly token: string;
  readonly expiresAt: Date;
}

/** Triggers, inspects and cancels runs; mints browser tokens. Use `runnel.admin`. */
export class Admin {
  readonly #conn: Connection;

  /** @internal */
  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /**
   * Triggers a run of the named workflow and returns its run id. The input
   * is sent as JSON (undefined becomes `{}`).
   *
   * @throws RunnelError `not_found` for an unknown workflow, `invalid_argument`, `unauthenticated`, …
   */
  async runWorkflow(workflow: string, input?: unknown, options: RunOptions = {}): Promise<string> {
    const what = `run workflow ${JSON.stringify(workflow)}`;
    const data = encodeJSON(input, "input");
    const rpc = this.#conn.rpc;
    if (!rpc) {
      const body = { input: JSON.parse(utf8.decode(data)), additionalMetadata: options.additionalMetadata ?? {} };
      const res = (await this.#conn.http("POST", `/api/v1/workflows/${encodeURIComponent(workflow)}/runs`, body, options.signal, what)) as { runId: string };
      return res.runId;
    }
    try {
      const res = await rpc.run.triggerRun(
        { workflow, input: data, additionalMetadata: options.additionalMetadata ?? {} },
        { signal: options.signal },
      );
      return res.runId;
    } catch (err) {
      throw toRunnelError(err, what);
    }
  }

  /**
   * Returns a run with its steps and their attempts.
   *
   * @throws RunnelError `not_found` when no such run is visible to the token.
   */
  async getRun(runId: string, options: { signal?: AbortSignal } = {}): Promise<Run> {
    const rpc = this.#conn.rpc;
    if (!rpc) {
      return fromRunJSON(await this.#conn.http("GET", `/api/v1/runs/${encodeURIComponent(runId)}`, undefined, options.signal, `get run ${runId}`));
    }
    try {
      const res = await rpc.run.getRun({ runId }, { signal: options.signal });
      if (!res.run) throw new RunnelError("internal", "the engine returned no run");
      return toRun(res.run);
    } catch (err) {
      throw toRunnelError(err, `get run ${runId}`);
    }
  }

  /** Lists runs, newest first. */
  async listRuns(options: ListRunsOptions = {}): Promise<Run[]> {
    const rpc = this.#conn.rpc;
    if (!rpc) {
      const q = new URLSearchParams();
      if (options.workflow) q.set("workflow", options.workflow);
      if (options.status) q.set("status", options.status);
      if (options.metadata) q.set("meta", `${options.metadata.key}:${options.metadata.value}`);
      if (options.limit) q.set("limit", String(options.limit));
      if (options.before) q.set("before", options.before);
      const res = (await this.#conn.http("GET", `/api/v1/runs?${q}`, undefined, options.signal, "list runs")) as { runs: unknown[] };
      return res.runs.map(fromRunJSON);
    }
    try {
      const res = await rpc.run.listRuns(
        {
          workflow: options.workflow ?? "",
          status: options.status ?? "",
          metaKey: options.metadata?.key ?? "",
          metaValue: options.metadata?.value ?? "",
          limit: options.limit ?? 0,
          before: options.before ?? "",
        },
        { signal: options.signal },
      );
      return res.runs.map(toRun);
    } catch (err) {
      throw toRunnelError(err, "list runs");
    }
  }

  /**
   * Cancels a run: its running steps' signals abort and no further steps
   * start. Returns the run's status afterwards.
   *
   * @throws RunnelError `failed_precondition` when the run already finished, `not_found`.
   */
  async cancelRun(runId: string, options: { signal?: AbortSignal } = {}): Promise<RunStatus> {
    const rpc = this.#conn.rpc;
    if (!rpc) {
      const res = (await this.#conn.http("POST", `/api/v1/runs/${encodeURIComponent(runId)}/cancel`, undefined, options.signal, `cancel run ${runId}`)) as { status: RunStatus };
      return res.status;
    }
    try {
      const res = await rpc.run.cancelRun({ runId }, { signal: options.signal });
      return res.status as RunStatus;
    } catch (err) {
      throw toRunnelError(err, `cancel run ${runId}`);
    }
  }

  /** Lists the workflows registered in the token's tenant. */
  async listWorkflows(options: { signal?: AbortSignal } = {}): Promise<{ name: string; steps: string[]; onEvents: string[] }[]> {
    const rpc = this.#conn.rpc;
    if (!rpc) {
      const res = (await this.#conn.http("GET", "/api/v1/workflows", undefined, options.signal, "list workflows")) as {
        workflows: { name: string; steps?: { name: string }[]; onEvents?: string[] }[];
      };
      return res.workflows.map((w) => ({ name: w.name, steps: (w.steps ?? []).map((s) => s.name), onEvents: w.onEvents ?? [] }));
    }
    try {
      const res = await rpc.run.listWorkflows({}, { signal: options.signal });
      return res.workflows.map((w) => ({ name: w.name, steps: w.steps.map((s) => s.name), onEvents: w.onEvents }));
    } catch (err) {
      throw toRunnelError(err, "list workflows");
    }
  }

  /**
   * Mints a short-lived, read-only browser token that can follow one run or
   * every run with one metadata pair, and nothing else. Call it on your
   * backend with an API token and hand the result to the page.
   *
   * @param ttlSeconds lifetime; the engine's default (15 minutes) when unset.
   */
  async createBrowserToken(scope: BrowserTokenScope, options: { ttlSeconds?: number; signal?: AbortSignal } = {}): Promise<BrowserToken> {
    const body: Record<string, string> = { ...scope };
    if (options.ttlSeconds !== undefined) body["ttl"] = `${options.ttlSeconds}s`;
    const res = await this.#conn.http("POST", "/api/v1/tokens", body, options.signal, "create browser token");
    const { token, expiresAt } = res as { token: string; expiresAt: string };
    return { token, expiresAt: new Date(expiresAt) };
  }
}

/** Pushes events that trigger workflows registered `onEvents`. Use `runnel.events`. */
export class Events {
  readonly #conn: Connection;

  /** @internal */
  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /**
   * Pushes an event: every workflow registered for `key` gets a run with
   * `payload` as input. Returns the runs' ids (none when no workflow
   * listens, which is not an error).
   */
  async push(key: string, payload?: unknown, options: RunOptions = {}): Promise<string[]> {
    const data = encodeJSON(payload, "payload");
    const rpc = this.#conn.rpc;
    if (!rpc) {
      const body = { key, payload: JSON.parse(utf8.decode(data)), additionalMetadata: options.additionalMetadata ?? {} };
      const res = (await this.#conn.http("POST", "/api/v1/events", body, options.signal, `push event ${JSON.stringify(key)}`)) as { runIds?: string[] };
      return res.runIds ?? [];
    }
    try {
      const res = await rpc.run.pushEvent(
        { key, payload: data, additionalMetadata: options.additionalMetadata ?? {} },
        { signal: options.signal },
      );
      return res.runIds;
    } catch (err) {
      throw toRunnelError(err, `push event ${JSON.stringify(key)}`);
    }
  }
}

const utf8 = new TextDecoder();

const date = (v: unknown): Date | null => (typeof v === "string" && v ? new Date(v) : null);

/** fromRunJSON reads a run of the JSON API. */
function fromRunJSON(v: unknown): Run {
  const r = v as Record<string, any>;
  return {
    id: r["runId"],
    workflow: r["workflow"],
    status: r["status"],
    input: r["input"],
    output: r["output"],
    error: r["error"] ?? "",
    additionalMetadata: r["additionalMetadata"] ?? {},
    parentRunId: r["parentRunId"] ?? "",
    parentStepRunId: r["parentStepRunId"] ?? "",
    createdAt: date(r["createdAt"]),
    startedAt: date(r["startedAt"]),
    finishedAt: date(r["finishedAt"]),
    steps: ((r["steps"] ?? []) as Record<string, any>[]).map((s) => ({
      id: s["stepRunId"],
      step: s["step"],
      parents: s["parents"] ?? [],
      status: s["status"],
      attempt: s["attempt"] ?? 0,
      output: s["output"],
      error: s["error"] ?? "",
      startedAt: date(s["startedAt"]),
      finishedAt: date(s["finishedAt"]),
      attempts: ((s["attempts"] ?? []) as Record<string, any>[]).map((a) => ({
        attempt: a["attempt"],
        status: a["status"],
        workerId: a["workerId"] ?? "",
        error: a["error"] ?? "",
        startedAt: date(a["startedAt"]),
        finishedAt: date(a["finishedAt"]),
      })),
    })),
  };
}

function toRun(r: RunMessage): Run {
  return {
    id: r.id,
    workflow: r.workflow,
    status: r.status as RunStatus,
    input: decodeJSON(r.input),
    output: decodeJSON(r.output),
    error: r.error,
    additionalMetadata: { ...r.additionalMetadata },
    parentRunId: r.parentRunId,
    parentStepRunId: r.parentStepRunId,
    createdAt: micros(r.createdAtUs),
    startedAt: micros(r.startedAtUs),
    finishedAt: micros(r.finishedAtUs),
    steps: r.steps.map((s) => ({
      id: s.id,
      step: s.step,
      parents: s.parents,
      status: s.status as StepStatus,
      attempt: s.attempt,
      output: decodeJSON(s.output),
      error: s.error,
      startedAt: micros(s.startedAtUs),
      finishedAt: micros(s.finishedAtUs),
      attempts: s.attempts.map((a) => ({
        attempt: a.attempt,
        status: a.status as StepStatus,
        workerId: a.workerId,
        error: a.error,
        startedAt: micros(a.startedAtUs),
        finishedAt: micros(a.finishedAtUs),
      })),
    })),
  };
}
