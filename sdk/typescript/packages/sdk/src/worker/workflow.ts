import type { StepContext } from "./context.js";

/** Options of a step. */
export interface StepOptions<P extends string = string> {
  /** Steps whose outputs this one needs: it runs after they completed. */
  parents?: readonly P[];
  /** How often a failed attempt is retried (default 0). */
  retries?: number;
  /** Base delay before a retry, doubled for each further one (engine default when unset). */
  backoffMs?: number;
  /** Limit of each attempt; its signal aborts with a StepTimeoutError when reached. */
  timeoutMs?: number;
}

/** A step function: its return value (JSON) is the step's output; a throw fails the attempt. */
export type StepFunction<I, P extends Record<string, unknown>, R> = (ctx: StepContext<I, P>) => R | Promise<R>;

/** @internal A step as the worker keeps it. */
export interface StepDef {
  name: string;
  parents: string[];
  retries: number;
  backoffMs: number;
  timeoutMs: number;
  fn: (ctx: StepContext<unknown, Record<string, unknown>>) => unknown;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;

function checkName(kind: string, name: string): void {
  if (typeof name !== "string" || name.length === 0 || name.length > 128 || !NAME.test(name)) {
    throw new TypeError(`runnel: invalid ${kind} name ${JSON.stringify(name)}: 1 to 128 letters, digits and - _ . : starting with a letter or digit`);
  }
}

/**
 * A workflow: named steps forming a DAG. Build it with {@link workflow};
 * each `step` returns a new Workflow type that knows the step's output, so
 * `ctx.stepOutput(parent)` is typed.
 *
 * ```ts
 * const wf = workflow<{ topic: string }>("summarize")
 *   .step("fetch", async (ctx) => ({ text: await load(ctx.workflowInput().topic) }))
 *   .step("answer", { parents: ["fetch"], retries: 2, timeoutMs: 60_000 }, async (ctx) => {
 *     const { text } = ctx.stepOutput("fetch");
 *     for (const token of llm(text, { signal: ctx.signal })) await ctx.putStream(token);
 *     return { done: true };
 *   });
 * ```
 */
export class Workflow<I = unknown, O extends Record<string, unknown> = {}> {
  /** The workflow's name. */
  readonly name: string;
  /** Event keys that trigger it (`runnel.events.push`). */
  readonly onEvents: readonly string[];
  /** @internal */
  readonly steps: readonly StepDef[];

  /** @internal */
  constructor(name: string, onEvents: readonly string[], steps: readonly StepDef[]) {
    this.name = name;
    this.onEvents = onEvents;
    this.steps = steps;
  }

  /** Adds a step with no parents. */
  step<N extends string, R>(name: N, fn: StepFunction<I, {}, R>): Workflow<I, O & { [K in N]: Awaited<R> }>;
  /** Adds a step with options: parents (typed by the steps added before), retries, backoff, timeout. */
  step<N extends string, R, P extends keyof O & string = never>(
    name: N,
    options: StepOptions<P>,
    fn: StepFunction<I, Pick<O, P>, R>,
  ): Workflow<I, O & { [K in N]: Awaited<R> }>;
  step(name: string, a: StepOptions | StepFunction<I, never, unknown>, b?: StepFunction<I, never, unknown>): Workflow<I, Record<string, unknown>> {
    const options: StepOptions = typeof a === "function" ? {} : a;
    const fn = (typeof a === "function" ? a : b) as StepDef["fn"] | undefined;
    checkName("step", name);
    if (typeof fn !== "function") throw new TypeError(`runnel: step ${JSON.stringify(name)} of workflow ${JSON.stringify(this.name)} has no function`);
    if (this.steps.some((s) => s.name === name)) {
      throw new TypeError(`runnel: workflow ${JSON.stringify(this.name)} has two steps named ${JSON.stringify(name)}`);
    }
    const parents = [...(options.parents ?? [])];
    for (const p of parents) {
      // Parents must be added first, which also rules out cycles.
      if (!this.steps.some((s) => s.name === p)) {
        throw new TypeError(`runnel: step ${JSON.stringify(name)} of workflow ${JSON.stringify(this.name)}: unknown parent ${JSON.stringify(p)} (add parents before their children)`);
      }
    }
    const int = (v: number | undefined, what: string, max: number) => {
      if (v === undefined) return 0;
      if (!Number.isInteger(v) || v < 0 || v > max) throw new TypeError(`runnel: step ${JSON.stringify(name)}: ${what} must be an integer from 0 to ${max}`);
      return v;
    };
    const def: StepDef = {
      name,
      parents,
      retries: int(options.retries, "retries", 100),
      backoffMs: int(options.backoffMs, "backoffMs", 3_600_000),
      timeoutMs: int(options.timeoutMs, "timeoutMs", 2 ** 31 - 1),
      fn,
    };
    return new Workflow(this.name, this.onEvents, [...this.steps, def]);
  }
}

/**
 * Starts a workflow definition. `I` is the type of the run's input.
 *
 * @param options.onEvents event keys that trigger the workflow.
 */
export function workflow<I = unknown>(name: string, options: { onEvents?: readonly string[] } = {}): Workflow<I, {}> {
  checkName("workflow", name);
  for (const key of options.onEvents ?? []) {
    if (typeof key !== "string" || !key) throw new TypeError(`runnel: workflow ${JSON.stringify(name)}: event keys must be non-empty strings`);
  }
  return new Workflow<I, {}>(name, [...(options.onEvents ?? [])], []);
}

/**
 * Throw it (or wrap an error in it) from a step to fail the attempt without
 * retrying it.
 */
export class NonRetryableError extends Error {
  override readonly name = "NonRetryableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
