/**
 * Runnel for Node: trigger runs, follow their event streams, and run
 * workflow steps in a worker.
 *
 * ```ts
 * import { Runnel } from "@runnel/sdk";
 *
 * const runnel = new Runnel(); // RUNNEL_HOST, RUNNEL_TOKEN
 * const runId = await runnel.admin.runWorkflow("demo-text", { chunks: 5 });
 * for await (const ev of runnel.listener.stream(runId)) {
 *   if (ev.type === "step.stream") process.stdout.write(ev.text());
 * }
 * ```
 *
 * @module
 */
import { createClient } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { RunService, WorkerService } from "./gen/runnel/v1/runnel_pb.js";
import { ClientCore, type RunnelOptions } from "./client.js";
import { DEFAULT_HOST } from "./connection.js";
import { Worker, type WorkerOptions } from "./worker/worker.js";

export { RunnelError, type ErrorCode } from "./errors.js";
export type * from "./events.js";
export { isTerminal, terminalEventTypes } from "./events.js";
export type * from "./admin.js";
export type { Admin, Events } from "./admin.js";
export type { Listener, StreamOptions, StreamVia, Subscription } from "./listener.js";
export type { RunnelOptions } from "./client.js";
export type { TokenSource } from "./connection.js";
export { DEFAULT_HOST } from "./connection.js";
export * from "./worker/index.js";

// One message may carry several 4 MiB stream payloads.
const READ_MAX = 64 << 20;
const WRITE_MAX = 16 << 20;
const WINDOW = 8 << 20;

/**
 * A client of a Runnel engine. Create one per process and share it.
 * `new Runnel()` reads RUNNEL_HOST (default http://127.0.0.1:7077) and
 * RUNNEL_TOKEN; options override both. It does not connect: the first call
 * does. Call `close()` to let the process exit while idle connections stay
 * open.
 */
export class Runnel extends ClientCore {
  readonly #sessions: Http2SessionManager[] = [];

  constructor(options: RunnelOptions = {}) {
    const env = typeof process !== "undefined" ? process.env : {};
    const host = options.host ?? env["RUNNEL_HOST"] ?? DEFAULT_HOST;
    const token = options.token ?? env["RUNNEL_TOKEN"] ?? "";
    const sessions: Http2SessionManager[] = [];
    super(host || DEFAULT_HOST, { ...options, token }, "rpc", {
      transport: (baseUrl, interceptors) => {
        // HTTP/2 (h2c for http://) multiplexes a worker's session,
        // heartbeats and puts on one connection; pings notice a dead engine.
        // A large receive window lets the engine send a replay without
        // waiting for window updates (Node's default is 64 KiB).
        const sessionManager = new Http2SessionManager(
          baseUrl,
          { pingIntervalMs: 15_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 60_000 },
          { settings: { initialWindowSize: WINDOW } },
        );
        sessions.push(sessionManager);
        return createConnectTransport({
          baseUrl,
          httpVersion: "2",
          sessionManager,
          interceptors,
          readMaxBytes: READ_MAX,
          writeMaxBytes: WRITE_MAX,
        });
      },
      clients: (transport) => ({ run: createClient(RunService, transport), worker: createClient(WorkerService, transport) }),
    });
    this.#sessions = sessions;
  }

  /**
   * A worker named `name` (several processes may share a name) that runs at
   * most `slots` steps at once (default 10). Register workflows, then
   * `await worker.start()`.
   */
  worker(name: string, options: WorkerOptions = {}): Worker {
    return new Worker(this, name, options);
  }

  /** Closes the client's connections. Calls in flight fail. */
  close(): void {
    for (const s of this.#sessions) s.abort();
  }
}
