import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Runnel, type RunnelEvent, type StreamOptions } from "../src/index.js";
import { Engine } from "./engine.js";
import { bin, binary, child, count, parent, sha256 } from "./fixtures/workflows.js";

/** key identifies an event for comparing sequences. */
const key = (ev: RunnelEvent) =>
  `${ev.position} ${ev.type} ${ev.runId} ${"attempt" in ev ? ev.attempt : ""} ${ev.type === "step.stream" ? sha256(ev.payload) : ""}`;

async function collect(sub: AsyncIterable<RunnelEvent>): Promise<RunnelEvent[]> {
  const out: RunnelEvent[] = [];
  for await (const ev of sub) out.push(ev);
  return out;
}

describe("listener", () => {
  let engine: Engine;
  let runnel: Runnel;
  let sse: Runnel;
  let stopWorker: () => Promise<void>;
  before(async () => {
    engine = await Engine.start();
    runnel = new Runnel({ host: engine.host, token: engine.token });
    sse = new Runnel({ host: engine.host, token: engine.token, streamVia: "sse" });
    const worker = runnel.worker("ts-listener-tests", { slots: 8, handleSignals: false });
    worker.register(count, bin, child, parent);
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

  for (const via of ["rpc", "sse"] as const) {
    it(`delivers exactly the stored sequence from the start, live and replayed (${via})`, async () => {
      const client = via === "rpc" ? runnel : sse;
      const runId = await runnel.admin.runWorkflow("ts-count", { n: 300, delayMs: 1 });
      const live = await collect(client.listener.stream(runId));
      const stored = await collect(runnel.listener.stream(runId));
      assert.deepEqual(live.map(key), stored.map(key));
      const streamed = stored.filter((e) => e.type === "step.stream").map((e) => (e.type === "step.stream" ? e.text() : ""));
      assert.deepEqual(streamed, Array.from({ length: 300 }, (_, i) => `e${i}`));
      assert.equal(stored.at(-1)?.type, "run.completed");
      // The SSE replay equals the RPC replay too.
      assert.deepEqual((await collect(sse.listener.stream(runId))).map(key), stored.map(key));
    });

    it(`resumes after random positions with no gap and no duplicate (${via})`, async () => {
      const client = via === "rpc" ? runnel : sse;
      const runId = await runnel.admin.runWorkflow("ts-count", { n: 100 });
      const stored = await collect(runnel.listener.stream(runId));
      for (let k = 0; k < 6; k++) {
        const i = Math.floor(Math.random() * (stored.length - 1));
        const got = await collect(client.listener.stream(runId, { after: stored[i]!.position }));
        assert.deepEqual(got.map(key), stored.slice(i + 1).map(key), `after event ${i}`);
      }
      // Filtered by type: the stream events only, still ending with the run.
      const onlyStream = await collect(client.listener.stream(runId, { types: ["step.stream"] }));
      assert.deepEqual(onlyStream.map(key), stored.filter((e) => e.type === "step.stream").map(key));
    });

    it(`starts at now with a contiguous suffix of the stored sequence (${via})`, async () => {
      const client = via === "rpc" ? runnel : sse;
      const runId = await runnel.admin.runWorkflow("ts-count", { n: 60, delayMs: 5 });
      // Wait until the run is streaming, then subscribe from now.
      let seen = 0;
      for await (const ev of runnel.listener.stream(runId, { types: ["step.stream"] })) {
        if (++seen === 10) break;
      }
      const fromNow = await collect(client.listener.stream(runId, { from: "now" }));
      const stored = await collect(runnel.listener.stream(runId));
      assert.ok(fromNow.length > 0 && fromNow.length < stored.length, `got ${fromNow.length} of ${stored.length}`);
      assert.deepEqual(fromNow.map(key), stored.slice(stored.length - fromNow.length).map(key));
    });

    it(`round-trips a 4 MiB binary payload (${via})`, async () => {
      const client = via === "rpc" ? runnel : sse;
      const size = 4 << 20;
      const runId = await runnel.admin.runWorkflow("ts-binary", { size });
      const events = await collect(client.listener.stream(runId, { types: ["step.stream"] }));
      assert.equal(events.length, 1);
      const ev = events[0]!;
      assert.equal(ev.type, "step.stream");
      if (ev.type !== "step.stream") return;
      assert.equal(ev.payload.length, size);
      assert.equal(sha256(ev.payload), sha256(binary(size)));
    });
  }

  it("refuses a payload over 4 MiB in putStream with an error naming the limit", async () => {
    const runId = await runnel.admin.runWorkflow("ts-binary", { size: (4 << 20) + 1 });
    const events = await collect(runnel.listener.stream(runId));
    const failed = events.find((e) => e.type === "step.failed");
    assert.ok(failed && failed.type === "step.failed" && /4 MiB/.test(failed.error), JSON.stringify(failed));
  });

  it("follows a parent and its children through one metadata stream (rpc and sse)", async () => {
    const value = `mk-${Date.now()}-${Math.random()}`;
    const ctl = new AbortController();
    const follow = async (client: Runnel) => {
      const got: RunnelEvent[] = [];
      const completed = new Set<string>();
      try {
        for await (const ev of client.listener.streamByAdditionalMetadata("tsKey", value, { signal: ctl.signal })) {
          got.push(ev);
          if (ev.type === "run.completed") completed.add(ev.runId);
          if (completed.size === 3) break;
        }
      } catch (err) {
        if (!ctl.signal.aborted) throw err;
      }
      return got;
    };
    const rpcP = follow(runnel);
    const sseP = follow(sse);
    const runId = await runnel.admin.runWorkflow("ts-parent", { n: 2 }, { additionalMetadata: { tsKey: value } });
    const timer = setTimeout(() => ctl.abort(), 60_000);
    const [viaRpc, viaSse] = await Promise.all([rpcP, sseP]);
    clearTimeout(timer);
    const run = await runnel.admin.getRun(runId);
    assert.equal(run.status, "completed");
    const childIds = (run.output as { spawn: { children: string[] } }).spawn.children;
    assert.equal(childIds.length, 2);
    const runs = new Set(viaRpc.map((e) => e.runId));
    assert.deepEqual([...runs].sort(), [runId, ...childIds].sort());
    for (const id of childIds) {
      const c = await runnel.admin.getRun(id);
      assert.equal(c.parentRunId, runId);
      assert.equal(c.additionalMetadata["tsKey"], value); // inherited
      const texts = viaRpc.filter((e) => e.runId === id && e.type === "step.stream").map((e) => (e.type === "step.stream" ? e.text() : ""));
      assert.equal(texts.length, 3);
    }
    assert.deepEqual(viaSse.map(key), viaRpc.map(key));
    // Resumable: after a position in the middle, the rest of the same order.
    const mid = Math.floor(viaRpc.length / 2);
    const rest: RunnelEvent[] = [];
    for await (const ev of runnel.listener.streamByAdditionalMetadata("tsKey", value, { after: viaRpc[mid]!.position })) {
      rest.push(ev);
      if (rest.length === viaRpc.length - mid - 1) break;
    }
    assert.deepEqual(rest.map(key), viaRpc.slice(mid + 1).map(key));
  });

  it("stops when its signal aborts", async () => {
    const ctl = new AbortController();
    const opts: StreamOptions = { signal: ctl.signal, from: "now" };
    const p = collect(runnel.listener.streamByAdditionalMetadata("never", "set", opts));
    setTimeout(() => ctl.abort(new Error("enough")), 50);
    await assert.rejects(p, /enough/);
  });
});
