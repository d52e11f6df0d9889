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

/** Sends one PutStream request. */
export type PutFn = (firstSeq: number, payloads: Uint8Array[], signal: AbortSignal) => Promise<void>;

/** isStale: the engine refused the attempt because it is no longer current. */
export function isStale(err: unknown): boolean {
  return err instanceof RunnelError && err.remote && (err.code === "failed_precondition" || err.code === "not_found");
}

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);

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
  #queue: Uint8Array[] = [];
  #head = 0;
  #queueBytes = 0;
  #puts = 0;
  #acked = 0;
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

  /** Queues a payload; waits while the queue is full. */
  async put(data: string | Uint8Array, signal: AbortSignal): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data.slice();
    if (bytes.length > MAX_PAYLOAD_SIZE) {
      throw new RunnelError("invalid_argument", `stream payload of ${bytes.length} bytes exceeds the 4 MiB limit`, { context: "put stream" });
    }
    for (;;) {
      this.#check(signal);
      const pending = this.#queue.length - this.#head;
      if (pending === 0 || (pending < this.#limits.queuePayloads && this.#queueBytes + bytes.length <= this.#limits.queueBytes)) break;
      await this.#changed(signal);
    }
    this.#queue.push(bytes);
    this.#queueBytes += bytes.length;
    this.#puts++;
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
    const target = this.#puts;
    while (this.#acked < target) {
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
    while (this.#acked < this.#puts) {
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
      while (start + n < this.#queue.length && n < this.#limits.batchPayloads) {
        const l = this.#queue[start + n]!.length;
        if (n > 0 && size + l > this.#limits.batchBytes) break;
        size += l;
        n++;
      }
      const batch = this.#queue.slice(start, start + n);
      const firstSeq = this.#acked + 1;
      try {
        for (;;) {
          try {
            await this.#send(firstSeq, batch, signal);
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
      this.#acked += n;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      this.#notify();
    }
  }
}
