// Real engine processes for the tests: the runnel binary (RUNNEL_BIN, or
// the one `npm test` built from this checkout), started on a free port with
// its own data directory.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
/** The repository's root (this file runs from dist-test/test). */
export const repoRoot = resolve(here, "../../../../../..");

/** runnelBin returns the engine binary: RUNNEL_BIN, or what `npm test` built (scripts/build-engine.mjs). */
export function runnelBin(): string {
  const bin = process.env["RUNNEL_BIN"] || fileURLToPath(new URL("../bin/runnel", import.meta.url));
  if (!existsSync(bin)) throw new Error(`no engine binary at ${bin}: run the tests with npm test, or set RUNNEL_BIN`);
  return bin;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => res(port));
    });
    s.on("error", rej);
  });
}

/** A process whose output lines can be waited for. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  #waiters: { s: string; from: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
    this.child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"] });
    const reader = () => {
      let partial = "";
      return (buf: Buffer) => {
        const parts = (partial + buf.toString()).split("\n");
        partial = parts.pop()!;
        for (const line of parts) if (line) this.lines.push(line);
        this.#check();
      };
    };
    this.child.stdout!.on("data", reader());
    this.child.stderr!.on("data", reader());
    this.exited = new Promise((res) => this.child.on("exit", (code) => {
      for (const w of this.#waiters) w.reject(new Error(`${cmd} ${args.join(" ")} exited (${code}) before printing ${JSON.stringify(w.s)}:\n${this.lines.slice(-30).join("\n")}`));
      this.#waiters = [];
      res(code);
    }));
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      for (let i = w.from; i < this.lines.length; i++) {
        if (this.lines[i]!.includes(w.s)) {
          w.resolve();
          return false;
        }
      }
      return true;
    });
  }

  /** waitFor resolves when a line (printed after `from`) contains s. */
  waitFor(s: string, from = 0, timeoutMs = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(s)}:\n${this.lines.slice(-30).join("\n")}`)), timeoutMs);
      this.#waiters.push({ s, from, resolve: () => { clearTimeout(t); resolve(); }, reject: (e) => { clearTimeout(t); reject(e); } });
      this.#check();
    });
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    await this.exited;
  }
}

/** An engine (`runnel server`) on a free port with its own data directory. */
export class Engine {
  proc!: Proc;
  readonly dataDir: string;
  readonly args: string[];
  host = "";
  token = "";
  #port = 0;

  private constructor(dataDir: string, args: string[]) {
    this.dataDir = dataDir;
    this.args = args;
  }

  static async start(extra: string[] = []): Promise<Engine> {
    const dataDir = mkdtempSync(join(tmpdir(), "runnel-ts-engine-"));
    const e = new Engine(dataDir, extra);
    e.#port = await freePort();
    e.host = `http://127.0.0.1:${e.#port}`;
    await e.restart();
    e.token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
    return e;
  }

  /** restart starts the engine again on the same port and data. */
  async restart(): Promise<void> {
    this.proc = new Proc(runnelBin(), ["server", "--addr", `127.0.0.1:${this.#port}`, "--data-dir", this.dataDir, "--heartbeat-interval", "500ms", ...this.args]);
    await this.proc.waitFor("engine listening");
  }

  async kill(): Promise<void> {
    await this.proc.kill("SIGKILL");
  }

  async stop(): Promise<void> {
    await this.proc.kill("SIGKILL");
    if (existsSync(this.dataDir)) rmSync(this.dataDir, { recursive: true, force: true });
  }
}
