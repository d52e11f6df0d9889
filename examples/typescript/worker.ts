// A Node worker whose step streams text, one word at a time, like an LLM
// streaming tokens. Run it next to `runnel dev`:
//
//   RUNNEL_TOKEN=$(cat runnel-data/admin.token) node dist/worker.js
//
// Stop it with Ctrl-C: it finishes the steps it runs, then exits.
import { Runnel, workflow } from "@runnel/sdk";
import { TEXT, WORKFLOW } from "./text.js";

const streamText = workflow<{ delayMs?: number }>(WORKFLOW).step("generate", { retries: 1, timeoutMs: 60_000 }, async (ctx) => {
  const delayMs = ctx.workflowInput().delayMs ?? 20;
  const words = TEXT.split(/(?<= )/); // keep the spaces
  for (const word of words) {
    await ctx.putStream(word);
    await new Promise((r) => setTimeout(r, delayMs));
    ctx.signal.throwIfAborted(); // cancelled or timed out: stop working
  }
  return { words: words.length };
});

const runnel = new Runnel(); // RUNNEL_HOST (default http://127.0.0.1:7077), RUNNEL_TOKEN
const worker = runnel.worker("ts-example-worker", { slots: 4 });
worker.register(streamText);
void worker.ready.then(() => console.error(`worker ready: ${worker.workerId}`));
await worker.start();
runnel.close();
