import type { StepAssignment } from "../gen/runnel/v1/runnel_pb.js";
import type { RunOptions, RunStatus } from "../admin.js";
import { decodeJSON } from "../json.js";
import { streamName } from "./stream.js";

/** Options of one `putStream` call. */
export interface PutStreamOptions {
  /** A named stream of the run (1-64 characters from A-Z a-z 0-9 . _ -); the default stream without. */
  stream?: string;
}

/**
 * What a step function gets: the run's input, its parents' outputs, its
 * stream, and a signal that aborts when the attempt is cancelled, times out
 * or its worker gives it up.
 *
 * `P` maps the step's parents to their outputs, as the workflow knows them.
 */
export interface StepContext<I = unknown, P extends Record<string, unknown> = Record<string, unknown>> {
  /** The run's id. */
  readonly runId: string;
  /** This step run's id (the same for all its attempts). */
  readonly stepRunId: string;
  /** The step's name. */
  readonly step: string;
  /** The run's workflow. */
  readonly workflow: string;
  /** This attempt's number, from 1. */
  readonly attempt: number;
  /**
   * Aborted when the attempt is cancelled (reason: StepCancelledError),
   * times out (StepTimeoutError), or the worker gives it up (stopping, or
   * the engine re-queued it). Pass it on to what the step awaits.
   */
  readonly signal: AbortSignal;

  /** The run's input. */
  workflowInput(): I;
  /** The output of a parent step. */
  stepOutput<K extends keyof P & string>(parent: K): P[K];
  /** A copy of the run's additional metadata. */
  additionalMetadata(): Record<string, string>;
  /** The number of earlier attempts: `attempt - 1`. */
  retryCount(): number;

  /**
   * Puts data on the run's stream as a step.stream event of this attempt
   * (a string is sent as UTF-8). Events are stored in put order.
   *
   * It resolves as soon as the data is queued; it waits only while the
   * attempt's send queue is full. `flush()` waits until events are stored
   * (the worker flushes before it reports the step's result anyway).
   *
   * With `{ stream: "name" }` the data goes to a named stream of the run
   * (1-64 characters from A-Z a-z 0-9 . _ -) instead of its default one;
   * subscribers choose streams with `streams`.
   *
   * @throws RunnelError `invalid_argument` for a payload over 4 MiB (nothing is sent; the step may go on) or a bad stream name, `failed_precondition` for a stream this step closed, or the stream's permanent error.
   */
  putStream(data: string | Uint8Array, options?: PutStreamOptions): Promise<void>;
  /**
   * Declares a stream finished before the step ends (the default stream
   * without a name): after everything put on it, a `step.stream_closed`
   * event is stored and later puts to it fail. Resolves once stored.
   */
  closeStream(stream?: string): Promise<void>;
  /** Waits until every event put so far is durably stored. */
  flush(): Promise<void>;

  /**
   * Starts a child run. It records this run and step as its parent and
   * inherits this run's additional metadata (the option's merged on top).
   * Spawns are numbered per attempt, so a spawn repeated after a lost
   * reply creates one child. `await child.result()` waits for it.
   */
  spawnWorkflow(workflow: string, input?: unknown, options?: Omit<RunOptions, "signal">): Promise<ChildRun>;
}

/** A run started by a step. */
export interface ChildRun {
  readonly runId: string;
  readonly workflow: string;
  /**
   * Waits until the child ends; resolves with its output (its steps'
   * outputs by step name) if it completed, and rejects with a ChildRunError
   * otherwise, or with the step's abort reason.
   */
  result(): Promise<unknown>;
}

/** A child run ended without completing. */
export class ChildRunError extends Error {
  override readonly name = "ChildRunError";
  constructor(
    readonly runId: string,
    readonly workflow: string,
    readonly status: RunStatus,
    readonly reason: string,
  ) {
    super(`child run ${runId} of ${JSON.stringify(workflow)} ${status}${reason ? `: ${reason}` : ""}`);
  }
}

/** The engine cancelled the attempt (the run was cancelled, for example). */
export class StepCancelledError extends Error {
  override readonly name = "StepCancelledError";
}
/** The attempt ran longer than its timeout. */
export class StepTimeoutError extends Error {
  override readonly name = "StepTimeoutError";
}
/** The worker gave the attempt up: it is stopping, or the engine moved the attempt elsewhere. */
export class StepAbandonedError extends Error {
  override readonly name = "StepAbandonedError";
}

/** @internal */
export class Context implements StepContext<unknown, Record<string, unknown>> {
  readonly #a: StepAssignment;
  readonly #parents: readonly string[];
  readonly #put: (data: string | Uint8Array, stream: string) => Promise<void>;
  readonly #close: (stream: string) => Promise<void>;
  readonly #flush: () => Promise<void>;
  readonly #spawn: (workflow: string, input: unknown, options: Omit<RunOptions, "signal">) => Promise<ChildRun>;
  readonly signal: AbortSignal;

  constructor(
    a: StepAssignment,
    parents: readonly string[],
    signal: AbortSignal,
    put: (data: string | Uint8Array, stream: string) => Promise<void>,
    close: (stream: string) => Promise<void>,
    flush: () => Promise<void>,
    spawn: (workflow: string, input: unknown, options: Omit<RunOptions, "signal">) => Promise<ChildRun>,
  ) {
    this.#a = a;
    this.#parents = parents;
    this.signal = signal;
    this.#put = put;
    this.#close = close;
    this.#flush = flush;
    this.#spawn = spawn;
  }

  get runId(): string { return this.#a.runId; }
  get stepRunId(): string { return this.#a.stepRunId; }
  get step(): string { return this.#a.step; }
  get workflow(): string { return this.#a.workflow; }
  get attempt(): number { return this.#a.attempt; }

  workflowInput(): unknown {
    return decodeJSON(this.#a.input) ?? null;
  }

  stepOutput(parent: string): unknown {
    if (!this.#parents.includes(parent)) {
      throw new TypeError(`runnel: step output: ${JSON.stringify(parent)} is not a parent of step ${JSON.stringify(this.#a.step)}`);
    }
    const out = this.#a.parentOutputs[parent];
    if (out === undefined) throw new Error(`runnel: step output: the engine sent no output of parent step ${JSON.stringify(parent)}`);
    return decodeJSON(out) ?? null;
  }

  additionalMetadata(): Record<string, string> {
    return { ...this.#a.additionalMetadata };
  }

  retryCount(): number {
    return Math.max(this.#a.attempt - 1, 0);
  }

  putStream(data: string | Uint8Array, options: PutStreamOptions = {}): Promise<void> {
    try {
      return this.#put(data, streamName(options.stream));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  closeStream(stream?: string): Promise<void> {
    try {
      return this.#close(streamName(stream));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  flush(): Promise<void> {
    return this.#flush();
  }

  spawnWorkflow(workflow: string, input?: unknown, options: Omit<RunOptions, "signal"> = {}): Promise<ChildRun> {
    return this.#spawn(workflow, input, options);
  }
}
