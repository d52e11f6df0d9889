// TypeScript SDK benchmarks (docs/benchmarks.md): a Node step's putStream
// throughput, a Node listener's receive throughput on a finished run, and
// put → Node listener latency at a fixed rate. Each figure is the median of
// REPEAT runs (default 5), each against a fresh engine (runnel server,
// SQLite). Run after npm test has compiled it and built the engine:
//
//   node dist-test/test/bench.js    (RUNNEL_BIN=… for another engine binary)
import { Runnel, workflow, type RunnelEvent } from "../src/index.js";
import { Engine } from "./engine.js";

const REPEAT = Number(process.env["REPEAT"] ?? 5);
const PUTS = Number(process.env["PUTS"] ?? 100_000);
const RATE = 1000;
const LATENCY_EVENTS = Number(process.env["LATENCY_EVENTS"] ?? 5000);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

const payload = (i: number) => {
  const b = new Uint8Array(100);
  new DataView(b.buffer).setFloat64(0, performance.now());
  new DataView(b.buffer).setUint32(8, i);
  return b;
};

interface Result { putRate: number; recvRpc: number; recvSse: number; recvRpcCpu: number; p50: number; p99: number }

async function once(): Promise<Result> {
  const engine = await Engine.start();
  const runnel = new Runnel({ host: engine.host, token: engine.token });
  const sse = new Runnel({ host: engine.host, token: engine.token, streamVia: "sse" });
  let putRate = 0;
  let flooded!: () => void;
  const floodDone = new Promise<void>((r) => (flooded = r));
  const flood = workflow<{ n: number }>("bench-flood").step("put", async (ctx) => {
    const n = ctx.workflowInput().n;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await ctx.putStream(payload(i));
    await ctx.flush(); // stored, not just queued
    putRate = n / ((performance.now() - t0) / 1000);
    flooded();
    return {};
  });
  const paced = workflow<{ n: number }>("bench-paced").step("put", async (ctx) => {
    const n = ctx.workflowInput().n;
    const t0 = performance.now();
    let i = 0;
    while (i < n) {
      const due = Math.min(n, Math.floor(((performance.now() - t0) * RATE) / 1000) + 1);
      while (i < due) await ctx.putStream(payload(i++));
      await new Promise((r) => setTimeout(r, 1));
    }
    return {};
  });
  const worker = runnel.worker("bench", { slots: 2, handleSignals: false });
  worker.register(flood, paced);
  const running = worker.start();
  await worker.ready;
  try {
    // No subscriber while the step puts: this measures the worker and the
    // engine's store, as runnel bench's ingest does.
    const floodRun = await runnel.admin.runWorkflow("bench-flood", { n: PUTS });
    await floodDone;
    for await (const _ of runnel.listener.stream(floodRun, { types: ["run.completed"] })) void _;

    // Events/s of wall time, and of the listener process's CPU time (what
    // the SDK could take if the engine, sharing the machine, were faster).
    let cpuRate = 0;
    const recv = async (client: Runnel) => {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      let n = 0;
      for await (const ev of client.listener.stream(floodRun)) if (ev.type === "step.stream") n++;
      if (n !== PUTS) throw new Error(`received ${n} of ${PUTS}`);
      const c = process.cpuUsage(c0);
      cpuRate = n / ((c.user + c.system) / 1e6);
      return n / ((performance.now() - t0) / 1000);
    };
    const recvRpc = await recv(runnel);
    const recvRpcCpu = cpuRate;
    const recvSse = await recv(sse);

    const lat: number[] = [];
    const pacedRun = await runnel.admin.runWorkflow("bench-paced", { n: LATENCY_EVENTS });
    let next = 0;
    for await (const ev of runnel.listener.stream(pacedRun, { types: ["step.stream"] }) as AsyncIterable<RunnelEvent>) {
      if (ev.type !== "step.stream") continue;
      const view = new DataView(ev.payload.buffer, ev.payload.byteOffset, ev.payload.byteLength);
      lat.push(performance.now() - view.getFloat64(0));
      if (view.getUint32(8) !== next++) throw new Error("out of order");
    }
    if (lat.length !== LATENCY_EVENTS) throw new Error(`latency: ${lat.length} of ${LATENCY_EVENTS}`);
    return { putRate, recvRpc, recvSse, recvRpcCpu, p50: pct(lat, 50), p99: pct(lat, 99) };
  } finally {
    await worker.stop();
    await running;
    runnel.close();
    await engine.stop();
  }
}

const results: Result[] = [];
for (let r = 0; r < REPEAT; r++) {
  const res = await once();
  results.push(res);
  console.log(`run ${r + 1}: put ${res.putRate.toFixed(0)}/s, receive rpc ${res.recvRpc.toFixed(0)}/s (${res.recvRpcCpu.toFixed(0)}/s of CPU) sse ${res.recvSse.toFixed(0)}/s, latency p50 ${res.p50.toFixed(2)} ms p99 ${res.p99.toFixed(2)} ms`);
}
const m = (f: (r: Result) => number) => median(results.map(f));
console.log(`median of ${REPEAT}: put ${m((r) => r.putRate).toFixed(0)} events/s; receive rpc ${m((r) => r.recvRpc).toFixed(0)} events/s (${m((r) => r.recvRpcCpu).toFixed(0)} per CPU second), sse ${m((r) => r.recvSse).toFixed(0)} events/s; latency at ${RATE}/s p50 ${m((r) => r.p50).toFixed(2)} ms, p99 ${m((r) => r.p99).toFixed(2)} ms`);
