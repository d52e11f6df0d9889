// Admin and events through both builds: Node's (Connect RPC) and the
// browser build's (JSON API over fetch), which must agree.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Runnel, RunnelError, workflow } from "../src/index.js";
import { Runnel as BrowserRunnel } from "../src/browser.js";
import { Engine } from "./engine.js";

describe("admin and events, Node and browser builds", () => {
  let engine: Engine;
  let runnel: Runnel;
  let web: BrowserRunnel;
  let stop: () => Promise<void>;
  before(async () => {
    engine = await Engine.start();
    runnel = new Runnel({ host: engine.host, token: engine.token });
    web = new BrowserRunnel({ host: engine.host, token: engine.token });
    const onEvent = workflow<{ name: string }>("ts-on-event", { onEvents: ["ts:user-created"] })
      .step("greet", (ctx) => ({ hello: ctx.workflowInput().name }))
      .step("meta", { parents: ["greet"] }, (ctx) => ({ meta: ctx.additionalMetadata(), greeted: ctx.stepOutput("greet").hello }));
    const worker = runnel.worker("ts-admin-tests", { handleSignals: false });
    worker.register(onEvent);
    const running = worker.start();
    await worker.ready;
    stop = async () => {
      await worker.stop();
      await running;
    };
  });
  after(async () => {
    await stop?.();
    runnel?.close();
    await engine?.stop();
  });

  for (const build of ["node", "browser"] as const) {
    it(`pushes events, lists, gets and cancels runs (${build})`, async () => {
      const client = build === "node" ? runnel : web;
      const tag = `${build}-${Date.now()}`;
      const ids = await client.events.push("ts:user-created", { name: "ada" }, { additionalMetadata: { tag } });
      assert.equal(ids.length, 1);
      for await (const _ of runnel.listener.stream(ids[0]!, { types: ["run.completed"] })) void _;
      const run = await client.admin.getRun(ids[0]!);
      assert.equal(run.status, "completed");
      assert.equal(run.workflow, "ts-on-event");
      assert.deepEqual(run.input, { name: "ada" });
      assert.deepEqual(run.output, { greet: { hello: "ada" }, meta: { meta: { tag }, greeted: "ada" } });
      assert.deepEqual(run.additionalMetadata, { tag });
      assert.deepEqual(run.steps.map((s) => [s.step, s.status, s.attempt, s.parents]), [["greet", "completed", 1, []], ["meta", "completed", 1, ["greet"]]]);
      assert.ok(run.createdAt instanceof Date && run.finishedAt instanceof Date);
      assert.equal(run.steps[0]!.attempts[0]!.status, "completed");
      // Both builds read the same run the same way.
      const other = build === "node" ? web : runnel;
      const again = await other.admin.getRun(ids[0]!);
      assert.deepEqual({ ...again, steps: again.steps.map((s) => ({ ...s, attempts: s.attempts.map((a) => ({ ...a, workerId: "" })) })) },
        { ...run, steps: run.steps.map((s) => ({ ...s, attempts: s.attempts.map((a) => ({ ...a, workerId: "" })) })) });

      const listed = await client.admin.listRuns({ metadata: { key: "tag", value: tag }, limit: 10 });
      assert.deepEqual(listed.map((r) => r.id), ids);
      assert.ok((await client.admin.listWorkflows()).some((w) => w.name === "ts-on-event" && w.onEvents.includes("ts:user-created")));
      await assert.rejects(client.admin.cancelRun(ids[0]!), (e: unknown) => e instanceof RunnelError && e.code === "failed_precondition");

      const runId = await client.admin.runWorkflow("ts-on-event", { name: "bob" });
      assert.match(runId, /^[0-9a-f-]{36}$/);
      await assert.rejects(client.admin.runWorkflow("no-such-workflow"), (e: unknown) => e instanceof RunnelError && e.code === "not_found");
      await assert.rejects(client.admin.getRun("00000000-0000-0000-0000-000000000000"), (e: unknown) => e instanceof RunnelError && e.code === "not_found");
    });
  }
});
