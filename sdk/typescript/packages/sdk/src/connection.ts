import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import type { RunService, WorkerService } from "./gen/runnel/v1/runnel_pb.js";
import { RunnelError, type ErrorCode } from "./errors.js";

/** The generated RPC clients, over one transport. */
export interface RpcClients {
  run: Client<typeof RunService>;
  worker: Client<typeof WorkerService>;
}

/**
 * How a client speaks Connect RPC. The browser build has none: it uses the
 * JSON and SSE API, so that no protobuf runtime lands in a page's bundle.
 */
export interface Rpc {
  transport: (host: string, interceptors: Interceptor[]) => Transport;
  clients: (transport: Transport) => RpcClients;
}

/** The engine's address when neither the options nor RUNNEL_HOST name one. */
export const DEFAULT_HOST = "http://127.0.0.1:7077";

/** A token, or a function that returns one (called before each call, so it can refresh it). */
export type TokenSource = string | (() => string | Promise<string>);

/** parseHosts validates and normalises "url[,url…]". */
export function parseHosts(raw: string): string[] {
  const hosts = raw.split(",").map((h) => h.trim()).filter(Boolean);
  if (hosts.length === 0) throw new TypeError("runnel: no host");
  return hosts.map((h) => {
    const withScheme = h.includes("://") ? h : `http://${h}`;
    let u: URL;
    try {
      u = new URL(withScheme);
    } catch {
      throw new TypeError(`runnel: invalid host ${JSON.stringify(h)}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new TypeError(`runnel: invalid host ${JSON.stringify(h)}: scheme must be http or https`);
    }
    if (u.search || u.hash) throw new TypeError(`runnel: invalid host ${JSON.stringify(h)}: must not have a query or fragment`);
    return u.href.replace(/\/+$/, "");
  });
}

/**
 * Connection is what the client's parts share: the engine's hosts, the
 * token, the generated RPC clients over the transport, and plain HTTP for
 * the JSON and SSE API.
 *
 * With several hosts (engine nodes sharing one database), calls go to the
 * current one; a call that cannot reach it moves the connection to the next,
 * and the caller's retry goes there.
 */
export class Connection {
  readonly hosts: readonly string[];
  /** The RPC clients; undefined in browsers (the JSON API serves them). */
  readonly rpc: RpcClients | undefined;
  readonly #token: TokenSource;
  readonly #fetch: typeof fetch;
  #current = 0;

  constructor(opts: { hosts: string[]; token: TokenSource; rpc?: Rpc | undefined; fetch?: typeof fetch | undefined }) {
    this.hosts = opts.hosts;
    this.#token = opts.token;
    this.#fetch = opts.fetch ?? ((...args: Parameters<typeof fetch>) => globalThis.fetch(...args));
    const auth: Interceptor = (next) => async (req) => {
      const t = await this.token();
      if (t) req.header.set("Authorization", `Bearer ${t}`);
      return next(req);
    };
    const rpc = opts.rpc;
    if (rpc) {
      const transports = opts.hosts.map((h) => rpc.transport(h, [auth]));
      this.rpc = rpc.clients(transports.length === 1 ? transports[0]! : this.#failover(transports));
    }
  }

  /** The RPC clients, or an error saying this build has none. */
  get run(): RpcClients["run"] {
    if (!this.rpc) throw new RunnelError("unimplemented", "this build of @runnel/sdk has no RPC transport");
    return this.rpc.run;
  }

  get worker(): RpcClients["worker"] {
    if (!this.rpc) throw new RunnelError("unimplemented", "this build of @runnel/sdk has no RPC transport");
    return this.rpc.worker;
  }

  /** The host calls go to now. */
  get host(): string {
    return this.hosts[this.#current]!;
  }

  /** refreshable: the token comes from a function, which may return a fresh one. */
  get refreshable(): boolean {
    return typeof this.#token === "function";
  }

  async token(): Promise<string> {
    return typeof this.#token === "function" ? await this.#token() : this.#token;
  }

  /** moveOn makes the next host current (after this one could not be reached). */
  moveOn(): void {
    this.#current = (this.#current + 1) % this.hosts.length;
  }

  #failover(transports: Transport[]): Transport {
    const unreachable = (err: unknown) =>
      typeof err === "object" && err !== null && "code" in err && (err as { code: unknown }).code === 14; // Code.Unavailable
    return {
      unary: async (...args) => {
        const i = this.#current;
        try {
          return await transports[i]!.unary(...args);
        } catch (err) {
          if (unreachable(err) && i === this.#current) this.moveOn();
          throw err;
        }
      },
      stream: async (...args) => {
        const i = this.#current;
        try {
          return await transports[i]!.stream(...args);
        } catch (err) {
          if (unreachable(err) && i === this.#current) this.moveOn();
          throw err;
        }
      },
    };
  }

  /** http makes a JSON API call and returns the decoded body. */
  async http(method: string, path: string, body: unknown, signal: AbortSignal | undefined, what: string): Promise<unknown> {
    const res = await this.fetch(path, { method, body: body === undefined ? undefined : JSON.stringify(body), signal }, what);
    return res.json();
  }

  /** fetch calls the current host with the token; a non-2xx answer throws a RunnelError with the API's code. */
  async fetch(path: string, init: RequestInit & { headers?: Record<string, string> }, what: string): Promise<Response> {
    const host = this.host;
    const headers: Record<string, string> = { ...init.headers };
    const t = await this.token();
    if (t) headers["Authorization"] = `Bearer ${t}`;
    if (init.body !== undefined) headers["Content-Type"] = "application/json";
    let res: Response;
    try {
      res = await this.#fetch(host + path, { ...init, headers });
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason;
      if (host === this.host && this.hosts.length > 1) this.moveOn();
      throw new RunnelError("unavailable", err instanceof Error ? err.message : String(err), { cause: err, context: what });
    }
    if (!res.ok) throw await httpError(res, what);
    return res;
  }
}

/** httpError reads the API's `{"error": {code, message}}` body. */
async function httpError(res: Response, what: string): Promise<RunnelError> {
  let code: ErrorCode = statusCode(res.status);
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code as ErrorCode;
    if (body.error?.message) message = body.error.message;
  } catch {
    // not the API's JSON: keep the status
  }
  return new RunnelError(code, message, { remote: true, context: what });
}

function statusCode(status: number): ErrorCode {
  switch (status) {
    case 400: return "invalid_argument";
    case 401: return "unauthenticated";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 408: return "deadline_exceeded";
    case 409: return "already_exists";
    case 412: return "failed_precondition";
    case 429: return "resource_exhausted";
    case 501: return "unimplemented";
    case 503: return "unavailable";
    case 504: return "deadline_exceeded";
  }
  return status >= 500 ? "unavailable" : "unknown";
}
