const utf8 = new TextDecoder();
const enc = new TextEncoder();

/**
 * A value the engine takes as JSON: anything JSON.stringify accepts. A
 * Uint8Array is sent as is and must hold JSON text.
 */
export type JsonInput = unknown;

/** encodeJSON turns a run input or step output into JSON bytes; undefined and null become {} (inputs) or null. */
export function encodeJSON(value: unknown, what: string, emptyAs = "{}"): Uint8Array {
  if (value === undefined || value === null) return enc.encode(emptyAs);
  if (value instanceof Uint8Array) {
    if (value.length === 0) return enc.encode(emptyAs);
    try {
      JSON.parse(utf8.decode(value));
    } catch {
      throw new TypeError(`${what} is not valid JSON`);
    }
    return value;
  }
  const s = JSON.stringify(value);
  if (s === undefined) throw new TypeError(`${what} cannot be encoded as JSON`);
  return enc.encode(s);
}

/** decodeJSON parses JSON bytes; empty is undefined. */
export function decodeJSON(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return undefined;
  return JSON.parse(utf8.decode(bytes));
}

export function micros(us: bigint): Date | null {
  return us === 0n ? null : new Date(Number(us / 1000n));
}
