/** The text the example worker streams, one word at a time. */
export const TEXT =
  "Runnel streams what a step produces while it works: tokens of an answer, progress, files. " +
  "A listener that joins late, or reconnects, gets every chunk exactly once and in order.";

export const WORKFLOW = "ts-stream-text";
