// The examples in examples/typescript, compiled and run as a user would
// (with @runnel/sdk linked into their node_modules, as `npm install` does).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { Engine, Proc, repoRoot } from "./engine.js";

const examples = join(repoRoot, "examples", "typescript");
const sdkRoot = join(repoRoot, "sdk", "typescript");

/** compileExamples links @runnel/sdk into the examples and compiles them to outDir. */
export function compileExamples(outDir: string): void {
  const link = join(examples, "node_modules", "@runnel", "sdk");
  if (!existsSync(link)) {
    mkdirSync(join(examples, "node_modules", "@runnel"), { recursive: true });
    try {
      symlinkSync(resolve(sdkRoot, "packages", "sdk"), link, "dir");
    } catch (err) {
      if (!existsSync(link)) throw err;
    }
  }
  execFileSync(join(sdkRoot, "node_modules", ".bin", "tsc"), ["-p", examples, "--outDir", join(examples, outDir), "--typeRoots", join(sdkRoot, "node_modules", "@types")], { stdio: "inherit" });
}

describe("examples/typescript", () => {
  let engine: Engine;
  before(async () => {
    compileExamples("dist");
    engine = await Engine.start();
  });
  after(async () => {
    await engine?.stop();
  });

  it("a Node worker streams text and a Node listener prints it", async () => {
    const env = { RUNNEL_HOST: engine.host, RUNNEL_TOKEN: engine.token };
    const worker = new Proc(process.execPath, [join(examples, "dist", "worker.js")], { env });
    try {
      await worker.waitFor("worker ready");
      const listener = new Proc(process.execPath, [join(examples, "dist", "listener.js")], { env });
      assert.equal(await listener.exited, 0, listener.lines.join("\n"));
      const { TEXT } = (await import(join(examples, "dist", "text.js"))) as { TEXT: string };
      assert.ok(listener.lines.includes(TEXT), listener.lines.join("\n"));
      // SIGTERM: the worker drains and exits by itself.
      worker.child.kill("SIGTERM");
      assert.equal(await worker.exited, 0);
    } finally {
      await worker.kill();
    }
  });
});
