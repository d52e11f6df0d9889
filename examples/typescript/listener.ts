// Triggers a run of the example workflow (or follows the run id given as
// argument) and prints its stream as it arrives.
//
//   RUNNEL_TOKEN=$(cat runnel-data/admin.token) node dist/listener.js
import { Runnel } from "@runnel/sdk";
import { WORKFLOW } from "./text.js";

const runnel = new Runnel();
const runId = process.argv[2] ?? (await runnel.admin.runWorkflow(WORKFLOW, { delayMs: 20 }));
console.error(`following run ${runId}`);

for await (const ev of runnel.listener.stream(runId)) {
  switch (ev.type) {
    case "step.stream":
      process.stdout.write(ev.text());
      break;
    case "step.failed":
      console.error(`\n[attempt ${ev.attempt} failed: ${ev.error}${ev.retrying ? "; retrying" : ""}]`);
      break;
    case "run.completed":
      process.stdout.write("\n");
      break;
    case "run.failed":
    case "run.cancelled":
    case "run.timed_out":
      console.error(`\nrun ${ev.type.slice(4)}: ${ev.error}`);
      process.exitCode = 1;
      break;
  }
}
runnel.close();
