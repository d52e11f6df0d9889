import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  NonRetryableError,
  Runnel,
  StepCancelledError,
  StepTimeoutError,
  workflow,
  type RunnelEvent,
} from "../src/index.js";
import { Engine, Proc, runnelBin } from "./engine.js";

const workerProc = fileURLToPath(new URL("./fixtures/worker-proc.js", import.meta.url));

async function collect(sub: AsyncIterable<RunnelEvent>): Promise<RunnelEvent[]> {
  const out: RunnelEvent[] = [];
  for await (const ev of sub) out.push(ev);
  return out;
}

const key = (ev: RunnelEvent) => `${ev.position} ${ev.type} ${"attempt" in ev ? ev.attempt : ""} ${ev.type === "step.stream" ? ev.text() : ""}`;

describe("worker", () => {
  let engine: Engine;
  let runnel: Runnel;
  let stopWorker: () => Promise<void>;
  const seen: { timeoutReason?: unknown; cancelReason?: unknown } = {};
  let cancelStarted!: () => void;
  const cancelStartedP = new Promise<void>((r) => (cancelStarted = r));

  before(async () => {
    engine = await Engine.start();
    runnel = new Runnel({ host: engine.host, token: engine.token });
    const flakyCalls = new Map<string, number>();
    const dag = workflow<{ x: number }>("ts-dag")
      .step("a", (ctx) => ({ v: ctx.workflowInput().x + 1 }))
      .step("b", { parents: ["a"], retries: 2, backoffMs: 10 }, async (ctx) => {
        const calls = (flakyCalls.get(ctx.runId) ?? 0) + 1;
        flakyCalls.set(ctx.runId, calls);
        await ctx.putStream(`b attempt ${ctx.attempt}`);
        if (ctx.retryCount() === 0) throw new Error("first attempt fails");
        return { v: ctx.stepOutput("a").v * 10, attempt: ctx.attempt };
      })
      .step("c", { parents: ["a"] }, (ctx) => ({ v: ctx.stepOutput("a").v + 100, meta: ctx.additionalMetadata() }))
      .step("d", { parents: ["b", "c"] }, (ctx) => ({ sum: ctx.stepOutput("b").v + ctx.stepOutput("c").v }));
    const noRetry = workflow("ts-noretry").step("once", { retries: 3 }, () => {
      throw new NonRetryableError("do not retry me");
    });
    const timeout = workflow("ts-timeout").step("hang", { timeoutMs: 300 }, (ctx) =>
      new Promise((_, reject) => ctx.signal.addEventListener("abort", () => {
        seen.timeoutReason = ctx.signal.reason;
        reject(ctx.signal.reason);
      })),
    );
    const cancel = workflow("ts-cancel").step("wait", (ctx) =>
      new Promise((_, reject) => {
        ctx.signal.addEventListener("abort", () => {
          seen.cancelReason = ctx.signal.reason;
          reject(ctx.signal.reason);
        });
        void ctx.putStream("waiting").then(() => cancelStarted());
      }),
    );
    const worker = runnel.worker("ts-worker-tests", { slots: 4, handleSignals: false });
    worker.register(dag, noRetry, timeout, cancel);
    const running = worker.start();
    await worker.ready;
    stopWorker = async () => {
      await worker.stop();
      await running;
    };
  });
  after(async () => {
    await stopWorker?.();
    runnel?.close();
    await engine?.stop();
  });

  it("runs a DAG with typed parent outputs and a retried step", async () => {
    const runId = await runnel.admin.runWorkflow("ts-dag", { x: 1 }, { additionalMetadata: { user: "u1" } });
    const events = await collect(runnel.listener.stream(runId));
    assert.equal(events.at(-1)?.type, "run.completed");
    const run = await runnel.admin.getRun(runId);
    assert.deepEqual(run.output, {
      a: { v: 2 },
      b: { v: 20, attempt: 2 },
      c: { v: 102, meta: { user: "u1" } },
      d: { sum: 122 },
    });
    const b = events.filter((e) => "step" in e && e.step === "b").map((e) => `${e.type}#${"attempt" in e ? e.attempt : ""}`);
    assert.deepEqual(b, ["step.started#1", "step.stream#1", "step.failed#1", "step.started#2", "step.stream#2", "step.completed#2"]);
    const failed = events.find((e) => e.type === "step.failed");
    assert.ok(failed?.type === "step.failed" && failed.retrying && /first attempt fails/.test(failed.error));
  });

  it("does not retry a NonRetryableError", async () => {
    const runId = await runnel.admin.runWorkflow("ts-noretry");
    const events = await collect(runnel.listener.stream(runId));
    assert.equal(events.at(-1)?.type, "run.failed");
    assert.equal(events.filter((e) => e.type === "step.started").length, 1);
  });

  it("aborts a step's signal when it times out", async () => {
    const runId = await runnel.admin.runWorkflow("ts-timeout");
    const events = await collect(runnel.listener.stream(runId));
    assert.ok(events.some((e) => e.type === "step.timed_out"), events.map((e) => e.type).join());
    assert.ok(["run.timed_out", "run.failed"].includes(events.at(-1)!.type));
    assert.ok(seen.timeoutReason instanceof StepTimeoutError);
  });

  it("aborts a step's signal when its run is cancelled", async () => {
    const runId = await runnel.admin.runWorkflow("ts-cancel");
    await cancelStartedP;
    assert.equal(await runnel.admin.cancelRun(runId), "cancelled");
    const events = await collect(runnel.listener.stream(runId));
    assert.equal(events.at(-1)?.type, "run.cancelled");
    for (let i = 0; i < 100 && !seen.cancelReason; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(seen.cancelReason instanceof StepCancelledError, String(seen.cancelReason));
  });

  it("re-runs the step of a SIGKILLed worker process on another worker", async () => {
    const env = { RUNNEL_HOST: engine.host, RUNNEL_TOKEN: engine.token };
    const a = new Proc(process.execPath, [workerProc], { env: { ...env, WORKER_NAME: "ts-proc-a" } });
    await a.waitFor("worker ready");
    const runId = await runnel.admin.runWorkflow("ts-slow", { n: 20, delayMs: 30 });
    await a.waitFor("put 5 attempt=1");
    await a.kill("SIGKILL");
    const b = new Proc(process.execPath, [workerProc], { env: { ...env, WORKER_NAME: "ts-proc-b" } });
    try {
      const events = await collect(runnel.listener.stream(runId));
      assert.equal(events.at(-1)?.type, "run.completed");
      const run = await runnel.admin.getRun(runId);
      const step = run.steps[0]!;
      assert.equal(step.attempts.length, 2);
      assert.notEqual(step.attempts[0]!.workerId, step.attempts[1]!.workerId);
      const second = events.filter((e) => e.type === "step.stream" && e.attempt === 2).map((e) => (e.type === "step.stream" ? e.text() : ""));
      assert.equal(second.join(""), Array.from({ length: 20 }, (_, i) => `tick ${i} `).join(""));
      assert.ok(b.lines.some((l) => l.includes("attempt=2")));
      // Graceful stop: SIGTERM drains and exits 0.
      b.child.kill("SIGTERM");
      assert.equal(await b.exited, 0);
      assert.ok(b.lines.some((l) => l.includes("worker stopped")));
    } finally {
      await b.kill();
    }
  });

  it("keeps every listener exact across an engine SIGKILL and restart mid-stream", async () => {
    const env = { RUNNEL_HOST: engine.host, RUNNEL_TOKEN: engine.token };
    const w = new Proc(process.execPath, [workerProc], { env: { ...env, WORKER_NAME: "ts-proc-restart" } });
    try {
      await w.waitFor("worker ready");
      const runId = await runnel.admin.runWorkflow("ts-slow", { n: 40, delayMs: 25 });
      const sse = new Runnel({ host: engine.host, token: engine.token, streamVia: "sse" });
      const viaSse = collect(sse.listener.stream(runId));
      const live: RunnelEvent[] = [];
      let killed = false;
      let streamed = 0;
      for await (const ev of runnel.listener.stream(runId)) {
        live.push(ev);
        if (ev.type === "step.stream" && ++streamed === 10 && !killed) {
          killed = true;
          await engine.kill();
          await engine.restart();
        }
      }
      assert.ok(killed);
      const stored = await collect(runnel.listener.stream(runId));
      assert.equal(stored.at(-1)?.type, "run.completed");
      assert.deepEqual(live.map(key), stored.map(key));
      assert.deepEqual((await viaSse).map(key), stored.map(key));
      sse.close();
    } finally {
      await w.kill();
    }
  });

  it("mixed fleet: a Go worker's run reads the same through TypeScript RPC and SSE listeners", async () => {
    const from = engine.proc.lines.length;
    const goWorker = new Proc(runnelBin(), ["worker", "--slots", "2"], { env: { RUNNEL_HOST: engine.host, RUNNEL_TOKEN: engine.token } });
    try {
      await engine.proc.waitFor("worker registered", from);
      const runId = await runnel.admin.runWorkflow("demo-text", { chunks: 30, intervalMs: 5 });
      const sse = new Runnel({ host: engine.host, token: engine.token, streamVia: "sse" });
      const [viaRpc, viaSse] = await Promise.all([collect(runnel.listener.stream(runId)), collect(sse.listener.stream(runId))]);
      const stored = await collect(runnel.listener.stream(runId));
      assert.equal(stored.at(-1)?.type, "run.completed");
      assert.equal(stored.filter((e) => e.type === "step.stream").length, 30);
      assert.deepEqual(viaRpc.map(key), stored.map(key));
      assert.deepEqual(viaSse.map(key), stored.map(key));
      sse.close();
    } finally {
      await goWorker.kill();
    }
  });
});
