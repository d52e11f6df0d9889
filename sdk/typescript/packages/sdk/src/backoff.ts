/**
 * Backoff computes exponentially growing, jittered delays between attempts:
 * base, 2×base, … up to max, each between half and all of it, so clients
 * dropped together by an engine restart do not come back in lockstep.
 */
export class Backoff {
  #cur = 0;
  constructor(
    readonly base: number,
    readonly max: number,
  ) {}

  next(): number {
    this.#cur = this.#cur === 0 ? this.base : Math.min(2 * this.#cur, this.max);
    const half = this.#cur / 2;
    return half + Math.random() * half;
  }

  reset(): void {
    this.#cur = 0;
  }
}

/** sleep waits ms, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
