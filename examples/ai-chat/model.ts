// The scripted model of the example: the AI SDK's mock language model
// (ai/test), no network, no keys. Its first step says a sentence and calls
// the `weather` tool; its second streams a long answer, word by word.
import { jsonSchema, simulateReadableStream, tool } from "ai";
import { MockLanguageModelV4 } from "ai/test";

export const WORKFLOW = "ai-chat";

export const INTRO = "Let me check the weather in Oslo first.";
export const TOOL_INPUT = { city: "Oslo" };
export const TOOL_OUTPUT = { city: "Oslo", celsius: 3, sky: "light snow" };
export const ANSWER = Array.from({ length: 12 }, (_, i) =>
  `Paragraph ${i + 1}: it is 3 degrees with light snow in Oslo, so wear a warm coat, gloves and boots, and take the tram rather than the bike.`,
).join(" ");

/** How the example page renders a finished answer (its assistant message's text content). */
export function rendered(): string {
  return `${INTRO}[weather ${JSON.stringify(TOOL_INPUT)} → ${JSON.stringify(TOOL_OUTPUT)}]${ANSWER}`;
}

const usage = {
  inputTokens: { total: 10, noCache: 10, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 100, text: 100, reasoning: undefined },
};

function words(id: string, text: string) {
  return [
    { type: "text-start" as const, id },
    ...text.split(/(?<= )/).map((delta) => ({ type: "text-delta" as const, id, delta })),
    { type: "text-end" as const, id },
  ];
}

/** A fresh mock model: step 1 calls the tool, step 2 answers. */
export function model(delayMs: number) {
  return new MockLanguageModelV4({
    doStream: [
      {
        stream: simulateReadableStream({
          chunkDelayInMs: delayMs,
          chunks: [
            ...words("intro", INTRO),
            { type: "tool-call" as const, toolCallId: "call-1", toolName: "weather", input: JSON.stringify(TOOL_INPUT) },
            { type: "finish" as const, finishReason: { unified: "tool-calls" as const, raw: undefined }, usage },
          ],
        }),
      },
      {
        stream: simulateReadableStream({
          chunkDelayInMs: delayMs,
          chunks: [
            ...words("answer", ANSWER),
            { type: "finish" as const, finishReason: { unified: "stop" as const, raw: undefined }, usage },
          ],
        }),
      },
    ],
  });
}

export const tools = {
  weather: tool({
    description: "The weather in a city.",
    inputSchema: jsonSchema<{ city: string }>({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }),
    execute: async ({ city }) => ({ ...TOOL_OUTPUT, city }),
  }),
};
