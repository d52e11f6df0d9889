import { Admin, Events } from "./admin.js";
import { Connection, parseHosts, type Rpc, type TokenSource } from "./connection.js";
import { Listener, type StreamVia } from "./listener.js";

/** Options of `new Runnel(...)`. */
export interface RunnelOptions {
  /**
   * The engine's base URL, e.g. `"http://127.0.0.1:7077"`. Several URLs
   * separated by commas name engine nodes sharing one database: calls move
   * to the next when one cannot be reached. Node reads RUNNEL_HOST when
   * unset; the default is http://127.0.0.1:7077.
   */
  host?: string;
  /**
   * The API token (Node reads RUNNEL_TOKEN when unset), or in a browser a
   * read-only browser token. A function is called before each call and
   * each (re)connection, so it can return a fresh token.
   */
  token?: TokenSource;
  /**
   * How the listener follows streams: `"rpc"` (Connect RPC; Node's
   * default) or `"sse"` (the HTTP API's Server-Sent Events; what the
   * browser build always uses, with a browser token).
   */
  streamVia?: StreamVia;
  /** The fetch used for the JSON and SSE API (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

/** The part of a client shared by Node and browsers. */
export class ClientCore {
  /** Trigger, inspect and cancel runs; mint browser tokens. */
  readonly admin: Admin;
  /** Push events that trigger workflows. */
  readonly events: Events;
  /** Follow runs' event streams. */
  readonly listener: Listener;
  /** @internal */
  readonly connection: Connection;

  /** @internal */
  constructor(
    host: string,
    options: RunnelOptions,
    defaultVia: StreamVia,
    rpc: Rpc | undefined,
  ) {
    this.connection = new Connection({ hosts: parseHosts(host), token: options.token ?? "", rpc, fetch: options.fetch });
    this.admin = new Admin(this.connection);
    this.events = new Events(this.connection);
    this.listener = new Listener(this.connection, options.streamVia ?? defaultVia);
  }

  /** The engine URL calls go to now. */
  get host(): string {
    return this.connection.host;
  }
}
