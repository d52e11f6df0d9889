// Builds the engine the tests run (./cmd/runnel of this checkout) into
// dist-test/bin/runnel, unless RUNNEL_BIN names one already (go test does).
// Run by npm before the tests; Go's build cache makes it quick when nothing
// changed.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

if (!process.env.RUNNEL_BIN) {
  const out = fileURLToPath(new URL("../dist-test/bin/runnel", import.meta.url));
  const repo = fileURLToPath(new URL("../../../../../", import.meta.url));
  execFileSync("go", ["build", "-o", out, "./cmd/runnel"], { cwd: repo, stdio: "inherit" });
}
