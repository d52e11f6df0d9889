/**
 * The AI SDK over Runnel.
 *
 * - In a worker's step, {@link writeUIMessageStream} puts an AI SDK UI
 *   message stream (`toUIMessageStream(...)`, or any `UIMessageChunk`
 *   source) into the step's stream, one chunk per event (JSON): the run's
 *   log holds the whole answer, in order.
 * - In the page, {@link RunnelChatTransport} is a `ChatTransport` for
 *   `useChat`: `sendMessages` starts a run through your backend and follows
 *   its stream; `reconnectToStream` picks the run up again after a reload
 *   (or in a new tab) and replays it from the log, so the answer shows
 *   once, whole, and goes on live.
 *
 * @module
 */
import { Runnel, type RunnelEvent } from "@runnel/sdk";
import type { ChatRequestOptions, ChatTransport, UIMessage, UIMessageChunk } from "ai";

/** What a step needs to write a stream: the step context of `@runnel/sdk`'s worker. */
export interface StreamWriter {
  putStream(data: string | Uint8Array): Promise<void>;
}

/**
 * Puts each chunk of a UI message stream into the step's stream as one
 * event holding the chunk as JSON, in order, and resolves with the number
 * of chunks once all were queued (the worker stores them before it reports
 * the step's result).
 *
 * ```ts
 * .step("answer", async (ctx) => {
 *   const result = streamText({ model, prompt: ctx.workflowInput().prompt });
 *   await writeUIMessageStream(ctx, result.toUIMessageStream());
 *   return { text: await result.text };
 * })
 * ```
 */
export async function writeUIMessageStream(ctx: StreamWriter, source: AsyncIterable<UIMessageChunk> | ReadableStream<UIMessageChunk>): Promise<number> {
  let n = 0;
  if (Symbol.asyncIterator in source) {
    for await (const chunk of source as AsyncIterable<UIMessageChunk>) {
      await ctx.putStream(JSON.stringify(chunk));
      n++;
    }
    return n;
  }
  const reader = (source as ReadableStream<UIMessageChunk>).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return n;
      await ctx.putStream(JSON.stringify(value));
      n++;
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * parseUIMessageChunk returns the UI message chunk a `step.stream` event
 * holds, or undefined for anything else (other events, other payloads).
 */
export function parseUIMessageChunk(ev: RunnelEvent): UIMessageChunk | undefined {
  if (ev.type !== "step.stream" || ev.payload[0] !== 0x7b /* { */) return undefined;
  try {
    const v = JSON.parse(ev.text()) as unknown;
    if (typeof v === "object" && v !== null && typeof (v as { type?: unknown }).type === "string") return v as UIMessageChunk;
  } catch {
    // not JSON: not a chunk
  }
  return undefined;
}

/** The run answering a chat turn, as your backend hands it to the page. */
export interface RunnelChatRun {
  /** The run whose steps write the answer. */
  runId: string;
  /** A browser token for the run (`runnel.admin.createBrowserToken({ runId })`). */
  token: string;
  /** The engine's URL; default: the page's origin. */
  host?: string;
}

/** What `start` is asked: the arguments `useChat` gives `sendMessages`. */
export type RunnelChatStartRequest<M extends UIMessage> = Parameters<ChatTransport<M>["sendMessages"]>[0];

/** Options of {@link RunnelChatTransport}. */
export interface RunnelChatTransportOptions<M extends UIMessage> {
  /**
   * Starts the run answering a turn, through your backend (which holds the
   * API token): typically a POST of the chat id and the new message, whose
   * answer is the run id and a browser token minted for that run.
   */
  start(request: RunnelChatStartRequest<M>): Promise<RunnelChatRun>;
  /**
   * The run to resume for a chat when `useChat` reconnects (`resume: true`
   * after a reload, or in another tab), or null if there is none. Default:
   * the last run this tab started for the chat (kept in sessionStorage).
   * Ask your backend here to open a chat in a new tab.
   */
  resume?(chatId: string, options: ChatRequestOptions): Promise<RunnelChatRun | null>;
  /**
   * Called before each (re)connection to a run for its token, e.g. to
   * fetch a fresh one when it expired. Default: the run's `token`.
   */
  getToken?(run: RunnelChatRun): string | Promise<string>;
}

/**
 * A `ChatTransport` for `useChat` whose answers are Runnel runs.
 *
 * The stream it returns is the run's UI message chunks, read from the
 * run's log: live while the run goes on, replayed once it ended. Its
 * listener reconnects by itself (network drop, engine restart) right after
 * the last event it delivered. A reconnect after a reload replays the run
 * from its start (`resumeStreamIsReplay`): `useChat` rebuilds the answer
 * from the replay, so it shows whole and once. The assistant message's id
 * is the run id.
 *
 * When a step attempt fails and is retried (its worker died, or it threw),
 * the new attempt's chunks replace the earlier attempt's: the transport
 * sends a `reset-step` chunk and the message holds only the latest
 * attempt's answer. To make that possible it does not pass `start-step`
 * chunks on, so the message has no `step-start` parts.
 */
export class RunnelChatTransport<M extends UIMessage = UIMessage> implements ChatTransport<M> {
  readonly resumeStreamIsReplay = true;
  readonly #opts: RunnelChatTransportOptions<M>;

  constructor(options: RunnelChatTransportOptions<M>) {
    this.#opts = options;
  }

  async sendMessages(options: RunnelChatStartRequest<M>): Promise<ReadableStream<UIMessageChunk>> {
    const run = await this.#opts.start(options);
    remember(options.chatId, run);
    return this.#follow(run, options.abortSignal);
  }

  async reconnectToStream(options: { chatId: string; abortSignal?: AbortSignal } & ChatRequestOptions): Promise<ReadableStream<UIMessageChunk> | null> {
    const run = this.#opts.resume ? await this.#opts.resume(options.chatId, options) : recall(options.chatId);
    if (!run) return null;
    remember(options.chatId, run);
    return this.#follow(run, options.abortSignal);
  }

  #follow(run: RunnelChatRun, abortSignal: AbortSignal | undefined): ReadableStream<UIMessageChunk> {
    const getToken = this.#opts.getToken;
    const runnel = new Runnel({
      ...(run.host ? { host: run.host } : {}),
      token: getToken ? () => getToken(run) : run.token,
    });
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(abortSignal?.reason);
    abortSignal?.addEventListener("abort", onAbort, { once: true });
    const events = runnel.listener.stream(run.runId, { types: ["step.stream", "run.failed", "run.timed_out", "run.cancelled"], signal: ctl.signal })[Symbol.asyncIterator]();
    const attempts = new Map<string, number>(); // step run id → latest attempt seen
    let chunked = false; // some chunk was sent since the last reset
    return new ReadableStream<UIMessageChunk>({
      async pull(controller) {
        try {
          for (;;) {
            const { value: ev, done } = await events.next();
            if (done) {
              controller.close();
              abortSignal?.removeEventListener("abort", onAbort);
              return;
            }
            if (ev.type === "run.failed" || ev.type === "run.timed_out" || ev.type === "run.cancelled") {
              controller.enqueue({ type: "error", errorText: ev.error || ev.type });
              continue;
            }
            const chunk = parseUIMessageChunk(ev);
            if (!chunk || ev.type !== "step.stream") continue;
            const seen = attempts.get(ev.stepRunId) ?? 0;
            if (ev.attempt < seen) continue; // an earlier attempt's late chunk
            if (ev.attempt > seen) {
              attempts.set(ev.stepRunId, ev.attempt);
              if (seen > 0 && chunked) {
                // A retried attempt: drop what the earlier one showed.
                controller.enqueue({ type: "reset-step" });
                chunked = false;
              }
            }
            if (chunk.type === "start-step") continue;
            if (chunk.type === "start") {
              if (seen > 0 && ev.attempt > seen) continue; // one start per message
              controller.enqueue({ ...chunk, messageId: run.runId });
              return;
            }
            chunked = true;
            controller.enqueue(chunk);
            return;
          }
        } catch (err) {
          abortSignal?.removeEventListener("abort", onAbort);
          if (ctl.signal.aborted) controller.close();
          else controller.error(err);
        }
      },
      cancel(reason) {
        ctl.abort(reason);
        abortSignal?.removeEventListener("abort", onAbort);
        void events.return?.();
      },
    });
  }
}

const key = (chatId: string) => `runnel:chat:${chatId}`;

function store(): Storage | undefined {
  try {
    return (globalThis as { sessionStorage?: Storage }).sessionStorage;
  } catch {
    return undefined;
  }
}

function remember(chatId: string, run: RunnelChatRun): void {
  try {
    store()?.setItem(key(chatId), JSON.stringify(run));
  } catch {
    // storage full or disabled: resuming after a reload needs `resume`
  }
}

function recall(chatId: string): RunnelChatRun | null {
  try {
    const v = JSON.parse(store()?.getItem(key(chatId)) ?? "null") as RunnelChatRun | null;
    return v && typeof v.runId === "string" && typeof v.token === "string" ? v : null;
  } catch {
    return null;
  }
}
