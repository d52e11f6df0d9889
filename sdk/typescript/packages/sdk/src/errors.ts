
/**
 * The engine's error codes, as its JSON API names them
 * (`{"error": {"code": ...}}`) and as Connect RPC defines them.
 */
export type ErrorCode =
  | "canceled"
  | "unknown"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "data_loss"
  | "unauthenticated";

// Connect's numeric codes (1 to 16), in order. Kept here rather than
// imported so that the browser build carries no Connect runtime.
const codeNames: readonly ErrorCode[] = [
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

/** The shape of @connectrpc/connect's ConnectError. */
interface ConnectErrorLike {
  name: "ConnectError";
  code: number;
  rawMessage: string;
  metadata: Headers;
}

function isConnectError(err: unknown): err is ConnectErrorLike {
  return err instanceof Error && err.name === "ConnectError" && typeof (err as { code?: unknown }).code === "number";
}

/**
 * An error from the engine, or from talking to it. `code` is the engine's
 * code (`not_found` for an unknown run or workflow, `unauthenticated` for a
 * missing or bad token, `invalid_argument`, …); `remote` tells an answer of
 * the engine from a failure to reach it (`unavailable`, `unknown` on a
 * broken connection).
 *
 * ```ts
 * try {
 *   await runnel.admin.getRun(id);
 * } catch (err) {
 *   if (err instanceof RunnelError && err.code === "not_found") { ... }
 * }
 * ```
 */
export class RunnelError extends Error {
  override readonly name = "RunnelError";
  /** The engine's error code. */
  readonly code: ErrorCode;
  /** The engine's message, without the call's context. */
  readonly rawMessage: string;
  /** True when the engine itself answered with this error. */
  readonly remote: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; remote?: boolean; context?: string }) {
    super(options?.context ? `${options.context}: ${message} [${code}]` : `${message} [${code}]`, { cause: options?.cause });
    this.code = code;
    this.rawMessage = message;
    this.remote = options?.remote ?? false;
  }
}

/**
 * toRunnelError turns whatever a call threw into a RunnelError, naming the
 * call in the message. An AbortError (the caller's signal) is passed
 * through unchanged.
 */
export function toRunnelError(err: unknown, context: string): unknown {
  if (err instanceof RunnelError) return err;
  if (isAbortError(err)) return err;
  if (isConnectError(err)) {
    // A broken connection or an unreachable engine is reported as
    // unavailable, unknown, internal or canceled without the engine having
    // said so; an error decoded from the engine's response carries the
    // response's headers.
    let remote = false;
    err.metadata.forEach(() => { remote = true; });
    return new RunnelError(codeNames[err.code - 1] ?? "unknown", err.rawMessage, { cause: err, remote, context });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new RunnelError("unavailable", message, { cause: err, context });
}

/** isAbortError reports whether err comes from an aborted AbortSignal. */
export function isAbortError(err: unknown): boolean {
  return typeof err === "object" && err !== null && "name" in err &&
    ((err as { name: unknown }).name === "AbortError" || (err as { name: unknown }).name === "TimeoutError");
}

/** isTransient reports whether a call that failed with err may succeed if made again. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof RunnelError)) return !isAbortError(err);
  switch (err.code) {
    case "unavailable":
    case "deadline_exceeded":
    case "aborted":
      return true;
    case "internal":
    case "unknown":
    case "canceled":
      return !err.remote;
  }
  return false;
}
