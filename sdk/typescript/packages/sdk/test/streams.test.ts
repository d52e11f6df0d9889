import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Runnel, RunnelError, workflow, type RunnelEvent } from "../src/index.js";
import { Engine } from "./engine.js";

/** A step writing three streams interleaved (default, "a", "b"), closing "a" on the way. */
const three = workflow("ts-three-streams").step("write", async (ctx) => {
  const refused: string[] = [];
  for (let i = 0; i < 20; i++) {
    await ctx.putStream(`a${i}`, { stream: "a" });
    if (i % 2 === 0) await ctx.putStream(`b${i}`, { stream: "b" });
    if (i % 3 === 0) await ctx.putStream(`d${i}`);
    if (i === 15) {
      await ctx.closeStream("a");
      break;
    }
  }
  for (const [data, stream] of [["late", "a"], ["x", "no spaces"]] as const) {
    try {
      await ctx.putStream(data, { stream });
    } catch (e) {
      refused.push(e instanceof RunnelError ? `${e.code}: ${e.message}` : String(e));
    }
  }
  await ctx.putStream("b-last", { stream: "b" });
  return { refused };
});

const isStreamEvent = (ev: RunnelEvent) => ev.type === "step.stream" || ev.type === "step.stream_closed";
const streamOf = (ev: RunnelEvent) => ("stream" in ev && ev.stream ? ev.stream : "default");
const key = (ev: RunnelEvent) => `${ev.position} ${ev.type} ${"stream" in ev ? ev.stream : ""}`;

/** What a subscriber of these streams must get of all. */
function onStreams(all: RunnelEvent[], streams: readonly string[]): RunnelEvent[] {
  return all.filter((ev) => !isStreamEvent(ev) || streams.includes(streamOf(ev)));
}

async function collect(sub: AsyncIterable<RunnelEvent>): Promise<RunnelEvent[]> {
  const out: RunnelEvent[] = [];
  for await (const ev of sub) out.push(ev);
  return out;
}

describe("named streams", () => {
  let engine: Engine;
  let runnel: Runnel;
  let sse: Runnel;
  let stopWorker: () => Promise<void>;
  before(async () => {
    engine = await Engine.start();
    runnel = new Runnel({ host: engine.host, token: engine.token });
    sse = new Runnel({ host: engine.host, token: engine.token, streamVia: "sse" });
    const worker = runnel.worker("ts-streams-tests", { slots: 4, handleSignals: false });
    worker.register(three);
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
    sse?.close();
    await engine?.stop();
  });

  it("puts on three streams; subscribers of one, two and all get exactly theirs; from latest", async () => {
    const runId = await runnel.admin.runWorkflow("ts-three-streams");
    const all = await collect(runnel.listener.stream(runId));
    assert.equal(all.at(-1)?.type, "run.completed");
    const texts: Record<string, string[]> = {};
    for (const ev of all) if (ev.type === "step.stream") (texts[ev.stream] ??= []).push(ev.text());
    assert.deepEqual(texts["a"], Array.from({ length: 16 }, (_, i) => `a${i}`));
    assert.deepEqual(texts["b"], [...Array.from({ length: 8 }, (_, i) => `b${2 * i}`), "b-last"]);
    assert.deepEqual(texts[""], ["d0", "d3", "d6", "d9", "d12", "d15"]);
    assert.deepEqual(all.filter((e) => e.type === "step.stream_closed").map(streamOf), ["a"]);
    const completed = all.find((e) => e.type === "run.completed");
    const refused = (completed && "output" in completed ? (completed.output as { write: { refused: string[] } }).write.refused : []);
    assert.match(refused[0] ?? "", /failed_precondition: .*stream "a" was closed/);
    assert.match(refused[1] ?? "", /invalid_argument: .*invalid stream name "no spaces"/);

    for (const client of [runnel, sse]) {
      for (const streams of [["a"], ["b"], ["default"], ["a", "b"], ["b", "default"], ["a", "b", "default"]]) {
        const got = await collect(client.listener.stream(runId, { streams }));
        assert.deepEqual(got.map(key), onStreams(all, streams).map(key), `streams ${streams}`);
      }
      for (const streams of [undefined, ["a"], ["default"]]) {
        const want = streams ? onStreams(all, streams) : all;
        let last = -1;
        want.forEach((e, i) => {
          if (e.type === "step.stream") last = i;
        });
        const got = await collect(client.listener.stream(runId, { from: "latest", ...(streams ? { streams } : {}) }));
        assert.deepEqual(got.map(key), want.slice(last).map(key), `from latest of ${streams}`);
      }
    }
    assert.throws(() => runnel.listener.stream(runId, { streams: ["a/b"] }), /invalid stream name/);
  });
});
