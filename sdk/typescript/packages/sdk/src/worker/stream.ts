import { Backoff, sleep } from "../backoff.js";
import { isTransient, RunnelError, toRunnelError } from "../errors.js";

/** The largest payload one `putStream` may carry: 4 MiB. */
export const MAX_PAYLOAD_SIZE = 4 << 20;

/** Bounds of an attempt's send queue and batches. */
export interface StreamLimits {
  batchPayloads: number;
  batchBytes: number;
  queuePayloads: number;
  queueBytes: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export const defaultStreamLimits: StreamLimits = {
  batchPayloads: 512,
  batchBytes: 8 << 20,
  queuePayloads: 4096,
  queueBytes: 32 << 20,
  retryBaseMs: 100,
  retryMaxMs: 2000,
};

/** What one PutStream request carries: consecutive payloads of one stream, and that stream's closing if it comes next. */
export interface PutBatch {
  firstSeq: number;
  payloads: Uint8Array[];
  /** "" is the run's default stream. */
  stream: string;
  closeStream: boolean;
}

/** Sends one PutStream request. */
export type PutFn = (batch: PutBatch, signal: AbortSignal) => Promise<void>;

/** How requests name a run's unnamed stream. */
export const DEFAULT_STREAM = "default";
const MAX_STREAM_NAME = 64;
const STREAM_NAME = /^[A-Za-z0-9._-]+$/;

/** A stream name as sent ("" for the default stream, also spelled "default"); throws for a name the engine would refuse. */
export function streamName(name: string | undefined): string {
  if (name === undefined || name === "" || name === DEFAULT_STREAM) return "";
  if (name.length > MAX_STREAM_NAME) {
    throw new RunnelError("invalid_argument", `stream name of ${name.length} characters is longer than ${MAX_STREAM_NAME}`, { context: "stream name" });
  }
  if (!STREAM_NAME.test(name)) {
    throw new RunnelError("invalid_argument", `invalid stream name ${JSON.stringify(name)}: use 1-${MAX_STREAM_NAME} characters from A-Z a-z 0-9 . _ -`, { context: "stream name" });
  }
  return name;
}

/** One entry of the send queue: a payload for a stream, or the closing of a stream. */
interface Queued {
  data: Uint8Array;
  stream: string;
  close: boolean;
}

/** isStale: the engine refused the attempt because it is no longer current. */
export function isStale(err: unknown): boolean {
  return err instanceof RunnelError && err.remote && (err.code === "failed_precondition" || err.code === "not_found");
}

const enc = new TextEncoder();
const EMPTY: Queued = { data: new Uint8Array(0), stream: "", close: false };

/**
 * PutQueue is the ordered send queue of one step attempt's stream.
 *
 * `put` only appends to the queue, so a step can put events much faster than
 * one round trip each. One sender loop per attempt sends everything queued
 * (up to a batch limit) in one request, one request at a time, so the engine
 * stores payloads in put order. Payloads are numbered from 1 per attempt; a
 * request sent again after a transient error (a dropped connection, an
 * engine restart) keeps its first seq and the engine skips seqs it already
 * stored, so a retry never duplicates an event. The queue is bounded: a full
 * queue makes `put` wait, which is the back-pressure that keeps a fast step
 * from outrunning the engine, and keeps a long outage from growing memory.
 */
export class PutQueue {
  readonly #send: PutFn;
  readonly #limits: StreamLimits;
  readonly #onStale: (err: unknown) => void;
  readonly #ctl = new AbortController();
  #queue: Queued[] = [];
  #head = 0;
  #queueBytes = 0;
  #puts = 0;
  #acked = 0;
  /** Puts and closes queued, and stored. */
  #ops = 0;
  #ackedOps = 0;
  readonly #closedStreams = new Set<string>();
  #err: unknown = undefined;
  #errSeen = false;
  #closed = false;
  #sender: Promise<void> | undefined;
  #wakeSender: (() => void) | undefined;
  #waiters: (() => void)[] = [];

  constructor(send: PutFn, limits: StreamLimits, onStale: (err: unknown) => void) {
    this.#send = send;
    this.#limits = limits;
    this.#onStale = onStale;
  }

  /** Queues a payload for a stream ("" the default one); waits while the queue is full. */
  async put(data: string | Uint8Array, stream: string, signal: AbortSignal): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data.slice();
    if (bytes.length > MAX_PAYLOAD_SIZE) {
      throw new RunnelError("invalid_argument", `stream payload of ${bytes.length} bytes exceeds the 4 MiB limit`, { context: "put stream" });
    }
    await this.#enqueue({ data: bytes, stream, close: false }, signal);
  }

  /** Queues the closing of a stream after everything put on it, and waits until it is stored. */
  async closeStream(stream: string, signal: AbortSignal): Promise<void> {
    await this.#enqueue({ data: EMPTY.data, stream, close: true }, signal);
    await this.flush(signal);
  }

  async #enqueue(q: Queued, signal: AbortSignal): Promise<void> {
    for (;;) {
      this.#check(signal);
      if (this.#closedStreams.has(q.stream)) {
        throw new RunnelError("failed_precondition", `stream ${JSON.stringify(q.stream || DEFAULT_STREAM)} was closed by this step`, { context: "put stream" });
      }
      const pending = this.#queue.length - this.#head;
      if (pending === 0 || (pending < this.#limits.queuePayloads && this.#queueBytes + q.data.length <= this.#limits.queueBytes)) break;
      await this.#changed(signal);
    }
    this.#queue.push(q);
    this.#queueBytes += q.data.length;
    this.#ops++;
    if (q.close) this.#closedStreams.add(q.stream);
    else this.#puts++;
    if (!this.#sender) this.#sender = this.#run();
    this.#wakeSender?.();
  }

  #check(signal: AbortSignal): void {
    if (this.#err !== undefined) {
      this.#errSeen = true;
      throw this.#err;
    }
    if (this.#closed) throw new RunnelError("failed_precondition", "the step has already returned", { context: "put stream" });
    if (signal.aborted) throw signal.reason;
  }

  /** Waits until every payload put so far is stored by the engine. */
  async flush(signal: AbortSignal): Promise<void> {
    const target = this.#ops;
    while (this.#ackedOps < target) {
      if (this.#err !== undefined) {
        this.#errSeen = true;
        throw this.#err;
      }
      if (signal.aborted) throw signal.reason;
      await this.#changed(signal);
    }
  }

  /**
   * finish closes the queue after the step returned and waits until it is
   * stored. It returns an error the step was never told about (its last
   * puts were lost), if any.
   */
  async finish(signal: AbortSignal): Promise<unknown> {
    this.#closed = true;
    this.#wakeSender?.();
    while (this.#ackedOps < this.#ops) {
      if (this.#err !== undefined) return this.#errSeen ? undefined : this.#err;
      if (signal.aborted) return signal.reason;
      await this.#changed(signal).catch(() => {});
    }
    return undefined;
  }

  /** abort drops whatever is queued and stops the sender. */
  abort(): void {
    this.#closed = true;
    this.#ctl.abort();
    this.#notify();
  }

  #notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  #changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  async #run(): Promise<void> {
    const bo = new Backoff(this.#limits.retryBaseMs, this.#limits.retryMaxMs);
    const signal = this.#ctl.signal;
    for (;;) {
      while (this.#head === this.#queue.length) {
        if (this.#closed || signal.aborted) return;
        await new Promise<void>((r) => (this.#wakeSender = r));
        this.#wakeSender = undefined;
      }
      if (signal.aborted) return;
      let n = 0;
      let size = 0;
      const start = this.#head;
      const stream = this.#queue[start]!.stream;
      const payloads: Uint8Array[] = [];
      let closeStream = false;
      while (start + n < this.#queue.length && payloads.length < this.#limits.batchPayloads) {
        const q = this.#queue[start + n]!;
        if (q.stream !== stream) break;
        if (q.close) {
          closeStream = true;
          n++;
          break;
        }
        if (n > 0 && size + q.data.length > this.#limits.batchBytes) break;
        size += q.data.length;
        payloads.push(q.data);
        n++;
      }
      const batch: PutBatch = { firstSeq: this.#acked + 1, payloads, stream, closeStream };
      try {
        for (;;) {
          try {
            await this.#send(batch, signal);
            break;
          } catch (e) {
            if (signal.aborted) return;
            const err = toRunnelError(e, "put stream");
            if (!isTransient(err)) throw err;
            await sleep(bo.next(), signal);
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        this.#err = err;
        this.#queue = [];
        this.#head = 0;
        this.#queueBytes = 0;
        this.#notify();
        if (isStale(err)) this.#onStale(err);
        return;
      }
      bo.reset();
      this.#queue.fill(EMPTY, start, start + n); // let the payloads be collected
      this.#head += n;
      this.#queueBytes -= size;
      this.#acked += payloads.length;
      this.#ackedOps += n;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      this.#notify();
    }
  }
}
