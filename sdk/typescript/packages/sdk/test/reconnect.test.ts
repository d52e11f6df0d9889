// The worker's side of the reconnect protocol (issue 16), against a fake
// engine that drops the worker's session mid-step: the step keeps running,
// its puts wait and are resent with the same sequence numbers, and the
// worker registers again naming its previous id and the attempt it runs.
// When the engine re-attaches the attempt, the step finishes once and its
// result is reported; when it does not, the step's signal aborts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { WorkerService, type RegisterWorkerRequest } from "../src/gen/runnel/v1/runnel_pb.js";
import { Runnel, StepAbandonedError, workflow } from "../src/index.js";

interface Fake {
  host: string;
  registrations: RegisterWorkerRequest[];
  stored: string[];
  completed: Promise<{ attempt: number; output: string }>;
  close(): Promise<void>;
}

async function fakeEngine(resume: boolean, dropAfterStored: number): Promise<Fake> {
  const registrations: RegisterWorkerRequest[] = [];
  const stored: string[] = [];
  let down = false;
  let dropSession!: () => void;
  const dropped = new Promise<void>((r) => (dropSession = r));
  let complete!: (v: { attempt: number; output: string }) => void;
  const completed = new Promise<{ attempt: number; output: string }>((r) => (complete = r));
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(WorkerService, {
        async registerWorker(req) {
          registrations.push(req);
          if (down) {
            down = false; // back after one refused registration
            throw new ConnectError("engine restarting", Code.Unavailable);
          }
          const n = registrations.length;
          return {
            workerId: `w${n}`,
            heartbeatIntervalMs: 200n,
            resumed: resume ? req.running : [],
          };
        },
        async *listen(req, ctx) {
          if (req.workerId === "w1") {
            yield {
              msg: {
                case: "assignment",
                value: { runId: "r1", stepRunId: "s1", workflow: "fake", step: "s", attempt: 1, input: new TextEncoder().encode("{}"), timeoutMs: 0n },
              },
            };
            await dropped;
            down = true;
            throw new ConnectError("engine gone", Code.Unavailable);
          }
          await new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r()));
        },
        async heartbeat() {
          return {};
        },
        async putStream(req) {
          if (down) throw new ConnectError("engine restarting", Code.Unavailable);
          // Like the engine: seqs already stored are skipped.
          req.payloads.forEach((p, i) => {
            const seq = Number(req.firstSeq) + i;
            if (seq === stored.length + 1) stored.push(new TextDecoder().decode(p));
          });
          if (stored.length >= dropAfterStored) dropSession();
          return {};
        },
        async completeStep(req) {
          if (down) throw new ConnectError("engine restarting", Code.Unavailable);
          complete({ attempt: req.attempt, output: new TextDecoder().decode(req.output) });
          return {};
        },
        async failStep() {
          return {};
        },
        async spawnRun() {
          throw new ConnectError("no", Code.Unimplemented);
        },
      }),
  });
  const server = http2.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    host: `http://127.0.0.1:${port}`,
    registrations,
    stored,
    completed,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe("worker reconnect protocol", () => {
  for (const resume of [true, false]) {
    it(resume ? "continues an attempt the engine re-attached" : "abandons an attempt the engine did not re-attach", async () => {
      const fake = await fakeEngine(resume, 3);
      let invocations = 0;
      let abortReason: unknown;
      let finished!: () => void;
      const stepDone = new Promise<void>((r) => (finished = r));
      const wf = workflow("fake").step("s", async (ctx) => {
        invocations++;
        try {
          for (let i = 0; i < 40; i++) {
            await ctx.putStream(`p${i}`);
            await new Promise((r) => setTimeout(r, 20));
          }
          ctx.signal.throwIfAborted();
          return { ok: true };
        } catch (err) {
          abortReason = ctx.signal.reason;
          throw err;
        } finally {
          finished();
        }
      });
      const runnel = new Runnel({ host: fake.host, token: "t" });
      const worker = runnel.worker("reconnecting", { handleSignals: false, logger: { debug() {}, info() {}, warn() {}, error() {} } });
      worker.register(wf);
      const running = worker.start();
      try {
        if (resume) {
          const done = await fake.completed;
          assert.deepEqual(done, { attempt: 1, output: '{"ok":true}' });
          assert.deepEqual(fake.stored, Array.from({ length: 40 }, (_, i) => `p${i}`)); // each once, in order
        } else {
          await stepDone;
          assert.ok(abortReason instanceof StepAbandonedError, String(abortReason));
        }
        assert.equal(invocations, 1);
        const again = fake.registrations.filter((r) => r.previousWorkerId === "w1");
        assert.ok(again.length >= 1, "registered again under the previous id");
        assert.deepEqual(again.at(-1)!.running.map((a) => `${a.stepRunId}#${a.attempt}`), ["s1#1"]);
      } finally {
        await worker.stop();
        await running;
        runnel.close();
        await fake.close();
      }
    });
  }
});
