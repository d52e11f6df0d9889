// The example's worker: the "ai-chat" workflow's step runs the model and
// writes its UI message stream into the run's stream, chunk by chunk.
//
//   RUNNEL_TOKEN=$(cat runnel-data/admin.token) node dist/worker.js
import { convertToModelMessages, isStepCount, streamText, type UIMessage } from "ai";
import { Runnel, workflow } from "@runnel/sdk";
import { writeUIMessageStream } from "@runnel/ai";
import { model, tools, WORKFLOW } from "./model.js";

const delayMs = Number(process.env["MODEL_DELAY_MS"] ?? 25);

export const chat = workflow<{ messages: UIMessage[] }>(WORKFLOW).step("answer", { retries: 2, timeoutMs: 300_000 }, async (ctx) => {
  const result = streamText({
    model: model(delayMs),
    messages: await convertToModelMessages(ctx.workflowInput().messages),
    tools,
    stopWhen: isStepCount(2),
    abortSignal: ctx.signal,
  });
  const chunks = await writeUIMessageStream(ctx, result.toUIMessageStream());
  return { chunks, text: await result.text };
});

const runnel = new Runnel();
const worker = runnel.worker("ai-chat-worker", { slots: 8 });
worker.register(chat);
void worker.ready.then(() => console.error("worker ready"));
await worker.start();
runnel.close();
