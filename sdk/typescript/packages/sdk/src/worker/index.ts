export { workflow, Workflow, NonRetryableError, type StepOptions, type StepFunction } from "./workflow.js";
export {
  ChildRunError,
  StepAbandonedError,
  StepCancelledError,
  StepTimeoutError,
  type ChildRun,
  type StepContext,
} from "./context.js";
export { MAX_PAYLOAD_SIZE } from "./stream.js";
export type { Worker, WorkerOptions, Logger } from "./worker.js";
