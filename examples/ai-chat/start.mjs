// npm start: build, then run the worker and the backend until Ctrl-C.
// The API token: RUNNEL_TOKEN, else the one `runnel dev` kept in
// runnel-data/admin.token (in the repository's root or here).
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "./build.mjs";

const here = dirname(fileURLToPath(import.meta.url));
await build();
let token = process.env.RUNNEL_TOKEN;
for (const f of [join(here, "..", "..", "runnel-data", "admin.token"), join(here, "runnel-data", "admin.token")]) {
  if (!token && existsSync(f)) token = readFileSync(f, "utf8").trim();
}
if (!token) {
  console.error("no API token: start `runnel dev` in the repository's root first, or set RUNNEL_TOKEN");
  process.exit(1);
}
const env = { ...process.env, RUNNEL_TOKEN: token };
const children = ["worker.js", "server.js"].map((f) => spawn(process.execPath, [join(here, "dist", f)], { env, stdio: "inherit" }));
for (const c of children) c.on("exit", (code) => { for (const o of children) o.kill("SIGTERM"); process.exitCode = code ?? 1; });
process.on("SIGINT", () => children.forEach((c) => c.kill("SIGTERM")));
