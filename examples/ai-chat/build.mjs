// Builds the example: the @runnel packages (npm ci first if needed), then
// the worker and backend (tsc) and the page (esbuild). The example uses the
// SDK workspace's node_modules (linked here), so React, the AI SDK and the
// @runnel packages are each installed once, at the versions its lockfile pins.
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(here, "..", "..", "sdk", "typescript");
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ["ignore", "inherit", "inherit"] });

export async function build({ packages = true } = {}) {
  if (!existsSync(join(sdk, "node_modules", ".bin", "tsc"))) run("npm", ["ci", "--no-audit", "--no-fund"], sdk);
  if (packages) run("npm", ["run", "build"], sdk);
  const link = join(here, "node_modules");
  if (!existsSync(link) && !isLink(link)) symlinkSync(join("..", "..", "sdk", "typescript", "node_modules"), link, "dir");
  run(join(sdk, "node_modules", ".bin", "tsc"), ["-p", here], here);
  const esbuild = await import(join(sdk, "node_modules", "esbuild", "lib", "main.js"));
  await esbuild.build({
    entryPoints: [join(here, "page.tsx")],
    outfile: join(here, "dist", "page.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    jsx: "automatic",
    minify: true,
    sourcemap: true,
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "warning",
  });
}

function isLink(p) {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await build({ packages: !process.argv.includes("--no-packages") });
