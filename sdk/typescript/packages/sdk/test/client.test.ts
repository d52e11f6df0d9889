import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Runnel, RunnelError, workflow } from "../src/index.js";
import { Engine, freePort } from "./engine.js";

describe("client", () => {
  let engine: Engine;
  let runnel: Runnel;
  before(async () => {
    engine = await Engine.start();
    runnel = new Runnel({ host: engine.host, token: engine.token });
  });
  after(async () => {
    runnel?.close();
    await engine?.stop();
  });

  it("runs a workflow with a TS worker and follows it", async () => {
    const wf = workflow<{ n: number }>("ts-hello").step("say", async (ctx) => {
      for (let i = 0; i < ctx.workflowInput().n; i++) await ctx.putStream(`chunk ${i};`);
      return { said: ctx.workflowInput().n };
    });
    const worker = runnel.worker("ts-worker", { slots: 2, handleSignals: false });
    worker.register(wf);
    const running = worker.start();
    await worker.ready;
    const runId = await runnel.admin.runWorkflow("ts-hello", { n: 5 }, { additionalMetadata: { k: "v" } });
    let text = "";
    const types: string[] = [];
    for await (const ev of runnel.listener.stream(runId)) {
      types.push(ev.type);
      if (ev.type === "step.stream") text += ev.text();
    }
    assert.equal(text, "chunk 0;chunk 1;chunk 2;chunk 3;chunk 4;");
    assert.deepEqual(types.filter((t) => t !== "step.stream"), ["run.started", "step.started", "step.completed", "run.completed"]);
    const run = await runnel.admin.getRun(runId);
    assert.equal(run.status, "completed");
    assert.deepEqual(run.output, { say: { said: 5 } });
    assert.deepEqual(run.additionalMetadata, { k: "v" });
    await worker.stop();
    await running;
  });

  it("throws typed errors", async () => {
    await assert.rejects(runnel.admin.getRun("00000000-0000-0000-0000-000000000000"), (err: unknown) => {
      assert.ok(err instanceof RunnelError);
      assert.equal(err.code, "not_found");
      return true;
    });
    const bad = new Runnel({ host: engine.host, token: "nope" });
    await assert.rejects(bad.admin.listRuns(), (err: unknown) => err instanceof RunnelError && err.code === "unauthenticated");
    bad.close();
  });

  it("mints browser tokens that follow one run over SSE, refreshed by a token function", async () => {
    const wf = workflow("ts-browser-token").step("s", async (ctx) => {
      await ctx.putStream("visible");
      return {};
    });
    const worker = runnel.worker("ts-token-worker", { handleSignals: false });
    worker.register(wf);
    const running = worker.start();
    await worker.ready;
    const runId = await runnel.admin.runWorkflow("ts-browser-token");
    const { token, expiresAt } = await runnel.admin.createBrowserToken({ runId }, { ttlSeconds: 60 });
    assert.ok(expiresAt.getTime() > Date.now());
    // The first connection is refused (a stale token); the function is
    // asked again and the subscription goes on.
    const tokens = ["rnl_expired", token];
    let calls = 0;
    const page = new Runnel({ host: engine.host, token: () => tokens[Math.min(calls++, 1)]!, streamVia: "sse" });
    const texts: string[] = [];
    for await (const ev of page.listener.stream(runId)) if (ev.type === "step.stream") texts.push(ev.text());
    assert.deepEqual(texts, ["visible"]);
    assert.ok(calls >= 2);
    // A browser token reads only its run, and cannot write.
    const other = await runnel.admin.runWorkflow("ts-browser-token");
    const scoped = new Runnel({ host: engine.host, token, streamVia: "sse" });
    await assert.rejects(async () => {
      for await (const _ of scoped.listener.stream(other)) void _;
    }, (err: unknown) => err instanceof RunnelError && (err.code === "not_found" || err.code === "permission_denied"));
    await assert.rejects(scoped.admin.runWorkflow("ts-browser-token"), (err: unknown) => err instanceof RunnelError && err.code === "permission_denied");
    page.close();
    scoped.close();
    await worker.stop();
    await running;
  });

  it("moves to the next host when one cannot be reached (worker and client)", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const multi = new Runnel({ host: `${dead},${engine.host}`, token: engine.token });
    assert.equal(multi.host, dead);
    const wf = workflow("ts-failover").step("s", () => ({ ok: true }));
    const worker = multi.worker("ts-failover-worker", { handleSignals: false, logger: { debug() {}, info() {}, warn() {}, error() {} } });
    worker.register(wf);
    const running = worker.start();
    await worker.ready; // registered after moving on to the live node
    assert.equal(multi.host, engine.host);
    const runId = await multi.admin.runWorkflow("ts-failover");
    const types: string[] = [];
    for await (const ev of multi.listener.stream(runId)) types.push(ev.type);
    assert.equal(types.at(-1), "run.completed");
    await worker.stop();
    await running;
    multi.close();
  });
});
