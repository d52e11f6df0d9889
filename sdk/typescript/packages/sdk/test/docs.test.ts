// Every ```ts block of docs/typescript.md (and of the README) compiles with tsc --strict
// against the built package, as a user's file importing @runnel/sdk.
import { it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { repoRoot } from "./engine.js";

it("docs/typescript.md and README snippets compile", () => {
  const blocks = (file: string) => [...readFileSync(file, "utf8").matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  const guide = blocks(join(repoRoot, "docs", "typescript.md"));
  const readme = blocks(join(repoRoot, "README.md"));
  assert.ok(guide.length >= 8 && readme.length >= 1, `found ${guide.length} + ${readme.length} snippets`);
  const snippets = [...guide, ...readme];
  // Under the workspace, so that @runnel/sdk resolves as in a user's project.
  const dir = fileURLToPath(new URL("../docs-snippets/", import.meta.url));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  snippets.forEach((s, i) => writeFileSync(join(dir, `snippet${i}.ts`), s));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true,
        lib: ["ES2022", "DOM"], types: ["node"], skipLibCheck: true,
      },
      include: ["*.ts"],
    }),
  );
  const tsc = join(repoRoot, "sdk", "typescript", "node_modules", ".bin", "tsc");
  try {
    execFileSync(tsc, ["-p", dir], { encoding: "utf8" });
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? String(err);
    assert.fail(`snippets do not compile (snippetN.ts is the N-th \`\`\`ts block from 0, the guide's then the README's):\n${out}`);
  }
});
