export { workflow, Workflow, NonRetryableError, type StepOptions, type StepFunction } from "./workflow.js";
export {
  ChildRunError,
  StepAbandonedError,
  StepCancelledError,
  StepTimeoutError,
  type ChildRun,
  type StepContext,
  type PutStreamOptions,
} from "./context.js";
export { MAX_PAYLOAD_SIZE, DEFAULT_STREAM } from "./stream.js";
export type { Worker, WorkerOptions, Logger } from "./worker.js";
