import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Runnel, RunnelError, workflow } from "../src/index.js";
import { Engine } from "./engine.js";

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
});
