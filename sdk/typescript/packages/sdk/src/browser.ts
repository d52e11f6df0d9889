/**
 * Runnel for browsers: follow a run or a metadata pair live with a
 * read-only browser token (over Server-Sent Events), or call the engine
 * with a token a backend handed out.
 *
 * ```ts
 * import { Runnel } from "@runnel/sdk";
 *
 * const runnel = new Runnel({ host: "https://runnel.example.com", token: browserToken });
 * for await (const ev of runnel.listener.stream(runId, { remember: true })) {
 *   if (ev.type === "step.stream") output.append(ev.text());
 * }
 * ```
 *
 * @module
 */
import { ClientCore, type RunnelOptions } from "./client.js";
import { DEFAULT_HOST } from "./connection.js";

export { RunnelError, type ErrorCode } from "./errors.js";
export type * from "./events.js";
export { isTerminal, terminalEventTypes } from "./events.js";
export type * from "./admin.js";
export type { Admin, Events } from "./admin.js";
export type { Listener, StreamOptions, StreamVia, Subscription } from "./listener.js";
export type { RunnelOptions } from "./client.js";
export type { TokenSource } from "./connection.js";
export { DEFAULT_HOST } from "./connection.js";
// The callback client the engine's /sdk/runnel.js has always offered.
export { subscribe } from "./subscribe.js";

/**
 * A client of a Runnel engine in a browser. `host` defaults to the page's
 * origin. It speaks the engine's JSON and SSE API over fetch (no protobuf
 * runtime in the bundle), so a read-only browser token can follow runs.
 */
export class Runnel extends ClientCore {
  constructor(options: RunnelOptions = {}) {
    const origin = (globalThis as { location?: Location }).location?.origin;
    super(options.host ?? origin ?? DEFAULT_HOST, { ...options, streamVia: "sse" }, "sse", undefined);
  }
}
