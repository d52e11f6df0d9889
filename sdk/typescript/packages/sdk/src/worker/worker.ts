import { Backoff, sleep } from "../backoff.js";
import type { ClientCore } from "../client.js";
import { isTransient, RunnelError, toRunnelError } from "../errors.js";
import { isTerminal } from "../events.js";
import type { StepAssignment, WorkflowDefinition } from "../gen/runnel/v1/runnel_pb.js";
import type { RunOptions, RunStatus } from "../admin.js";
import { encodeJSON } from "../json.js";
import { ChildRunError, Context, StepAbandonedError, StepCancelledError, StepTimeoutError, type ChildRun } from "./context.js";
import { defaultStreamLimits, isStale, PutQueue, type StreamLimits } from "./stream.js";
import { NonRetryableError, type StepDef, type Workflow } from "./workflow.js";

/** Where the worker reports what it does. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Options of `runnel.worker(name, options)`. */
export interface WorkerOptions {
  /** Steps run at once, 1 to 10000 (default 10). */
  slots?: number;
  /**
   * Stop gracefully on SIGTERM and SIGINT (default true): take no new
   * steps, let running ones finish (up to `drainTimeoutMs`), hand back the
   * rest, disconnect.
   */
  handleSignals?: boolean;
  /** How long `stop()` lets running steps finish before aborting them (default 30 s). */
  drainTimeoutMs?: number;
  /** Default: warnings and errors to the console. */
  logger?: Logger;
}

/** @internal Timing knobs; tests shrink them. */
export interface WorkerTuning {
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  reportBaseMs: number;
  reportMaxMs: number;
  callTimeoutMs: number;
  defaultHeartbeatMs: number;
  heartbeatMisses: number;
  stream: StreamLimits;
}

const defaultTuning: WorkerTuning = {
  reconnectBaseMs: 100,
  reconnectMaxMs: 2000,
  reportBaseMs: 100,
  reportMaxMs: 2000,
  callTimeoutMs: 30_000,
  defaultHeartbeatMs: 5000,
  heartbeatMisses: 5,
  stream: defaultStreamLimits,
};

const consoleLogger: Logger = {
  debug() {},
  info() {},
  warn: (m, f) => console.warn(`runnel: ${m}`, f ?? ""),
  error: (m, f) => console.error(`runnel: ${m}`, f ?? ""),
};

interface Attempt {
  key: string;
  a: StepAssignment;
  ctl: AbortController;
  queue: PutQueue | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  spawns: number;
  done: Promise<void>;
}

const keyOf = (stepRunId: string, attempt: number) => `${stepRunId}#${attempt}`;

/**
 * A worker runs the steps of its registered workflows as the engine assigns
 * them, at most `slots` at a time. Get one from `runnel.worker(name)`,
 * `register` workflows, then `await start()`.
 *
 * It keeps itself connected: when its session drops (network, engine
 * restart, node failover) its steps keep running, their stream puts wait in
 * a bounded queue, and it registers again naming the attempts it still runs;
 * it continues those the engine re-attaches and abandons the others (their
 * signal aborts with a StepAbandonedError).
 */
export class Worker {
  readonly name: string;
  readonly slots: number;
  /** Resolves once the worker first registered: runs of its workflows can be triggered from then on. */
  readonly ready: Promise<void>;
  readonly #client: ClientCore;
  readonly #log: Logger;
  readonly #handleSignals: boolean;
  readonly #drainTimeoutMs: number;
  readonly #workflows = new Map<string, Workflow<any, any>>();
  /** @internal */
  tuning: WorkerTuning = defaultTuning;
  #resolveReady!: () => void;
  #running = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #attempts = new Map<string, Attempt>();
  #free: number;
  #slotWaiters: (() => void)[] = [];
  #session: AbortController | undefined;
  #stopCtl = new AbortController();
  #workerId = "";

  /** @internal */
  constructor(client: ClientCore, name: string, options: WorkerOptions) {
    if (typeof name !== "string" || !name || name.length > 128 || /[\u0000-\u001f\u007f]/.test(name)) {
      throw new TypeError(`runnel: invalid worker name ${JSON.stringify(name)}: 1 to 128 printable characters`);
    }
    const slots = options.slots ?? 10;
    if (!Number.isInteger(slots) || slots < 1 || slots > 10000) {
      throw new TypeError(`runnel: worker ${JSON.stringify(name)}: slots must be an integer from 1 to 10000, not ${slots}`);
    }
    this.#client = client;
    this.name = name;
    this.slots = slots;
    this.#free = slots;
    this.#log = options.logger ?? consoleLogger;
    this.#handleSignals = options.handleSignals ?? true;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.ready = new Promise((r) => (this.#resolveReady = r));
  }

  /** The engine's id of the worker's current session ("" before it registered). */
  get workerId(): string {
    return this.#workerId;
  }

  /** Adds workflows to run. Call it before `start`. */
  register(...workflows: Workflow<any, any>[]): this {
    if (this.#running) throw new Error("runnel: register workflows before start()");
    for (const wf of workflows) {
      if (this.#workflows.has(wf.name)) throw new TypeError(`runnel: workflow ${JSON.stringify(wf.name)} is already registered`);
      if (wf.steps.length === 0) throw new TypeError(`runnel: workflow ${JSON.stringify(wf.name)} has no steps`);
    }
    for (const wf of workflows) this.#workflows.set(wf.name, wf);
    return this;
  }

  /**
   * Connects and runs assigned steps until `stop()` (or SIGTERM/SIGINT). It
   * resolves once stopped, after the steps it started have returned; it
   * rejects if the engine refuses the worker for good (bad token, invalid
   * workflow definitions).
   */
  async start(): Promise<void> {
    if (this.#running) throw new Error(`runnel: worker ${JSON.stringify(this.name)} is already running`);
    if (this.#workflows.size === 0) throw new Error(`runnel: worker ${JSON.stringify(this.name)}: no workflows registered`);
    this.#running = true;
    const onSignal = () => void this.stop();
    if (this.#handleSignals && typeof process !== "undefined") {
      process.once("SIGTERM", onSignal);
      process.once("SIGINT", onSignal);
    }
    try {
      await this.#loop();
    } finally {
      await Promise.allSettled([...this.#attempts.values()].map((a) => a.done));
      await this.#deregister();
      if (this.#handleSignals && typeof process !== "undefined") {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
      }
      this.#running = false;
    }
  }

  /**
   * Stops gracefully: takes no new steps, lets running ones finish (at most
   * `drainTimeoutMs`, then aborts them), and disconnects; steps assigned
   * meanwhile go back to the engine. Resolves when done.
   */
  stop(): Promise<void> {
    if (this.#stopped) return this.#stopped;
    this.#stopping = true;
    this.#log.info("worker stopping: draining running steps", { running: this.#attempts.size });
    const drainTimer = setTimeout(() => {
      for (const at of this.#attempts.values()) at.ctl.abort(new StepAbandonedError("the worker stopped before the step returned"));
    }, this.#drainTimeoutMs);
    this.#stopped = (async () => {
      await Promise.allSettled([...this.#attempts.values()].map((a) => a.done));
      clearTimeout(drainTimer);
      this.#stopCtl.abort();
      this.#session?.abort();
    })();
    return this.#stopped;
  }

  /**
   * Tells the engine this worker leaves on purpose, once its steps have
   * ended, so it re-queues what they did not finish at once rather than at
   * its heartbeat timeout. Best effort: an engine it cannot reach finds the
   * worker gone at that timeout anyway.
   */
  async #deregister(): Promise<void> {
    if (!this.#workerId) return;
    try {
      await this.#client.connection.worker.deregisterWorker({ workerId: this.#workerId }, { timeoutMs: 5_000 });
    } catch (err) {
      this.#log.debug("deregister worker", { workerId: this.#workerId, error: String(err) });
    }
  }

  #definitions(): WorkflowDefinition[] {
    return [...this.#workflows.values()].map((wf) => ({
      $typeName: "runnel.v1.WorkflowDefinition",
      name: wf.name,
      onEvents: [...wf.onEvents],
      steps: wf.steps.map((s) => ({
        $typeName: "runnel.v1.StepDefinition",
        name: s.name,
        parents: s.parents,
        retries: s.retries,
        backoffMs: BigInt(s.backoffMs),
        timeoutMs: BigInt(s.timeoutMs),
      })),
    }));
  }

  async #loop(): Promise<void> {
    const conn = this.#client.connection;
    const bo = new Backoff(this.tuning.reconnectBaseMs, this.tuning.reconnectMaxMs);
    const defs = this.#definitions();
    let prevId = "";
    while (!this.#stopCtl.signal.aborted) {
      const running = [...this.#attempts.values()].filter((at) => !at.ctl.signal.aborted).map((at) => ({ stepRunId: at.a.stepRunId, attempt: at.a.attempt }));
      let res;
      try {
        res = await conn.worker.registerWorker(
          { name: this.name, slots: this.slots, workflows: defs, previousWorkerId: prevId, running },
          { signal: this.#stopCtl.signal, timeoutMs: this.tuning.callTimeoutMs },
        );
      } catch (e) {
        if (this.#stopCtl.signal.aborted) return;
        const err = toRunnelError(e, "register worker") as RunnelError;
        switch (err.code) {
          case "invalid_argument":
          case "unauthenticated":
          case "permission_denied":
          case "unimplemented":
            this.#abandonAll("the engine refused the worker");
            throw err;
          case "not_found":
          case "failed_precondition":
            // The engine forgot the previous worker id: its steps were re-queued.
            prevId = "";
            this.#abandonAll("the engine no longer knows the worker's previous session");
        }
        const d = bo.next();
        this.#log.warn("worker registration failed; retrying", { error: err.message, retryInMs: Math.round(d) });
        await sleep(d, this.#stopCtl.signal).catch(() => {});
        continue;
      }
      // Continue the attempts the engine re-attached; abandon the others
      // (they ended or were re-queued as new attempts).
      const resumed = new Set(res.resumed.map((r) => keyOf(r.stepRunId, r.attempt)));
      for (const at of this.#attempts.values()) {
        if (!resumed.has(at.key)) at.ctl.abort(new StepAbandonedError("the engine re-queued the step while the worker was away"));
      }
      this.#workerId = prevId = res.workerId;
      const hb = Number(res.heartbeatIntervalMs) || this.tuning.defaultHeartbeatMs;
      this.#log.info("worker registered", { workerId: res.workerId, resumed: resumed.size, heartbeatMs: hb });
      this.#resolveReady();
      const healthy = await this.#runSession(res.workerId, hb);
      if (this.#stopCtl.signal.aborted) return;
      if (healthy) bo.reset();
      const d = bo.next();
      this.#log.warn("worker session lost; registering again", { workerId: res.workerId, retryInMs: Math.round(d) });
      await sleep(d, this.#stopCtl.signal).catch(() => {});
    }
  }

  #abandonAll(why: string): void {
    for (const at of this.#attempts.values()) at.ctl.abort(new StepAbandonedError(why));
  }

  /** runSession listens for assignments until the session breaks; it returns whether it worked at all. */
  async #runSession(workerId: string, heartbeatMs: number): Promise<boolean> {
    const conn = this.#client.connection;
    const session = new AbortController();
    this.#session = session;
    if (this.#stopping && this.#attempts.size === 0) session.abort();
    let healthy = false;
    let misses = 0;
    const hb = setInterval(async () => {
      try {
        await conn.worker.heartbeat({ workerId }, { signal: session.signal, timeoutMs: heartbeatMs });
        misses = 0;
        healthy = true;
      } catch (e) {
        if (session.signal.aborted) return;
        const err = toRunnelError(e, "heartbeat") as RunnelError;
        if (err.code === "not_found" && err.remote) {
          this.#log.warn("the engine declared the worker dead", { workerId });
          session.abort();
        } else if (++misses >= this.tuning.heartbeatMisses) {
          this.#log.warn("heartbeats keep failing; dropping the session", { workerId, error: err.message });
          session.abort();
        }
      }
    }, heartbeatMs);
    try {
      for await (const msg of conn.worker.listen({ workerId }, { signal: session.signal })) {
        healthy = true;
        if (msg.msg.case === "assignment") this.#assign(msg.msg.value);
        else if (msg.msg.case === "cancellation") {
          const c = msg.msg.value;
          for (const at of this.#attempts.values()) {
            if (at.a.stepRunId === c.stepRunId && (c.attempt === 0 || at.a.attempt === c.attempt)) {
              at.ctl.abort(new StepCancelledError(`step cancelled by the engine${c.reason ? `: ${c.reason}` : ""}`));
            }
          }
        }
      }
    } catch (e) {
      if (!session.signal.aborted) this.#log.debug("listen ended", { error: String(e) });
    } finally {
      clearInterval(hb);
      session.abort();
    }
    return healthy;
  }

  #assign(a: StepAssignment): void {
    const key = keyOf(a.stepRunId, a.attempt);
    if (this.#attempts.has(key)) return; // a repeated assignment of a running attempt
    if (this.#stopping) {
      // Draining: not run; the engine re-queues it when the worker disconnects.
      this.#log.debug("not starting a step while stopping", { step: a.step, runId: a.runId });
      return;
    }
    const ctl = new AbortController();
    const at: Attempt = { key, a, ctl, queue: undefined, timer: undefined, spawns: 0, done: Promise.resolve() };
    // The timeout starts when the assignment arrives: the engine's clock for
    // the attempt started when it assigned it.
    const ms = Number(a.timeoutMs);
    if (ms > 0) at.timer = setTimeout(() => ctl.abort(new StepTimeoutError(`step timed out after ${ms} ms`)), ms);
    this.#attempts.set(key, at);
    at.done = this.#runAttempt(at).finally(() => {
      clearTimeout(at.timer);
      this.#attempts.delete(key);
      if (this.#stopping && this.#attempts.size === 0) this.#session?.abort();
    });
  }

  async #acquire(signal: AbortSignal): Promise<boolean> {
    while (this.#free === 0) {
      if (signal.aborted) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.#slotWaiters.push(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
    if (signal.aborted) return false;
    this.#free--;
    return true;
  }

  #release(): void {
    this.#free++;
    this.#slotWaiters.shift()?.();
  }

  async #runAttempt(at: Attempt): Promise<void> {
    const { a, ctl } = at;
    const def = this.#workflows.get(a.workflow)?.steps.find((s: StepDef) => s.name === a.step);
    if (!def) {
      await this.#report(at, undefined, new Error(`worker ${JSON.stringify(this.name)} has no step ${JSON.stringify(a.step)} in workflow ${JSON.stringify(a.workflow)}`));
      return;
    }
    if (!(await this.#acquire(ctl.signal))) return;
    const conn = this.#client.connection;
    const queue = new PutQueue(
      (batch, signal) =>
        conn.worker
          .putStream(
            { stepRunId: a.stepRunId, attempt: a.attempt, firstSeq: BigInt(batch.firstSeq), payloads: batch.payloads, stream: batch.stream, closeStream: batch.closeStream },
            { signal, timeoutMs: this.tuning.callTimeoutMs },
          )
          .then(() => {}),
      this.tuning.stream,
      (err) => ctl.abort(new StepAbandonedError(`the engine refused the attempt's stream: ${String(err)}`)),
    );
    at.queue = queue;
    try {
      const ctx = new Context(
        a,
        def.parents,
        ctl.signal,
        (data, stream) => queue.put(data, stream, ctl.signal),
        (stream) => queue.closeStream(stream, ctl.signal),
        () => queue.flush(ctl.signal),
        (workflow, input, options) => this.#spawn(at, workflow, input, options),
      );
      let out: unknown;
      let stepErr: unknown;
      try {
        out = await def.fn(ctx);
      } catch (e) {
        stepErr = e;
      }
      if (ctl.signal.aborted) {
        queue.abort();
        this.#log.debug("step not reported: its signal aborted", { step: a.step, reason: String(ctl.signal.reason) });
        return;
      }
      // Stream events come before the result: a subscriber sees every event
      // a step put before its step.completed or step.failed.
      const ferr = await queue.finish(ctl.signal);
      if (ctl.signal.aborted || (ferr !== undefined && isStale(ferr))) return;
      if (ferr !== undefined && stepErr === undefined) stepErr = ferr;
      await this.#report(at, out, stepErr);
    } finally {
      queue.abort();
      this.#release();
    }
  }

  /** report sends the attempt's result, retrying transient failures while the attempt lives (across session drops). */
  async #report(at: Attempt, out: unknown, stepErr: unknown): Promise<void> {
    const conn = this.#client.connection;
    const { a, ctl } = at;
    let output: Uint8Array | undefined;
    if (stepErr === undefined) {
      try {
        output = encodeJSON(out === undefined ? null : out, "step output", "null");
      } catch (e) {
        stepErr = new NonRetryableError(`marshal step output: ${String(e)}`);
      }
    }
    const bo = new Backoff(this.tuning.reportBaseMs, this.tuning.reportMaxMs);
    for (;;) {
      try {
        if (stepErr === undefined) {
          await conn.worker.completeStep({ stepRunId: a.stepRunId, attempt: a.attempt, output: output! }, { signal: ctl.signal, timeoutMs: this.tuning.callTimeoutMs });
        } else {
          await conn.worker.failStep(
            { stepRunId: a.stepRunId, attempt: a.attempt, error: errorText(stepErr), noRetry: stepErr instanceof NonRetryableError },
            { signal: ctl.signal, timeoutMs: this.tuning.callTimeoutMs },
          );
        }
        return;
      } catch (e) {
        if (ctl.signal.aborted) return;
        const err = toRunnelError(e, "report step result") as RunnelError;
        if (isStale(err)) return;
        if (isTransient(err)) {
          await sleep(bo.next(), ctl.signal).catch(() => {});
          continue;
        }
        if (stepErr === undefined && (err.code === "invalid_argument" || err.code === "resource_exhausted")) {
          // The engine refused the output (too large, say): fail the attempt
          // rather than leave it running until it times out.
          stepErr = new NonRetryableError(`report step output: ${err.message}`);
          continue;
        }
        this.#log.error("reporting step result failed", { step: a.step, error: err.message });
        return;
      }
    }
  }

  async #spawn(at: Attempt, workflow: string, input: unknown, options: Omit<RunOptions, "signal">): Promise<ChildRun> {
    const conn = this.#client.connection;
    const data = encodeJSON(input, "input");
    // The spawn's number within this attempt is its key: the engine keeps
    // one child per (step run, attempt, key), so the call may be repeated.
    const key = String(at.spawns++);
    const bo = new Backoff(this.tuning.reportBaseMs, this.tuning.reportMaxMs);
    const signal = at.ctl.signal;
    for (;;) {
      try {
        const res = await conn.worker.spawnRun(
          { parentStepRunId: at.a.stepRunId, parentAttempt: at.a.attempt, workflow, input: data, additionalMetadata: options.additionalMetadata ?? {}, key },
          { signal, timeoutMs: this.tuning.callTimeoutMs },
        );
        return this.#child(res.runId, workflow, signal);
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        const err = toRunnelError(e, `spawn workflow ${JSON.stringify(workflow)}`);
        if (!isTransient(err)) throw err;
        await sleep(bo.next(), signal);
      }
    }
  }

  #child(runId: string, workflow: string, signal: AbortSignal): ChildRun {
    const listener = this.#client.listener;
    let result: Promise<unknown> | undefined;
    return {
      runId,
      workflow,
      result: () =>
        (result ??= (async () => {
          for await (const ev of listener.stream(runId, { types: ["run.completed", "run.failed", "run.cancelled", "run.timed_out"], signal })) {
            if (ev.type === "run.completed") return ev.output;
            if (isTerminal(ev.type) && ev.type !== "run.started") {
              throw new ChildRunError(runId, workflow, ev.type.slice(4) as RunStatus, "error" in ev ? ev.error : "");
            }
          }
          throw new RunnelError("internal", `the stream of child run ${runId} ended without its terminal event`);
        })()),
    };
  }
}

/**
 * errorText is what the engine records of a failed attempt: the error's
 * message (with its name unless it is a plain Error), as the Go worker
 * sends err.Error(). Stacks stay in the worker's process: the error is
 * shown to whoever follows the run, browsers included.
 */
function errorText(err: unknown): string {
  let s = err instanceof Error ? (err.name && err.name !== "Error" ? `${err.name}: ${err.message}` : err.message) : String(err);
  if (s.length > 32 << 10) s = s.slice(0, 32 << 10) + "… (truncated)";
  return s;
}
