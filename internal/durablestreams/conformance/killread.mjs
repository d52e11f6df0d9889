// Reads a durable stream with @durable-streams/client, live, and prints each
// JSON message on its own line; used by crash_test.go, which SIGKILLs and
// restarts the engine while this reads. Session errors (the engine is gone
// for a moment) are retried by the client; if a session ends with an error
// anyway, a new one resumes from the last offset the client handed out.
import { stream } from "@durable-streams/client";

const [url, token] = process.argv.slice(2);
let offset = "-1";
for (let sessions = 0; ; sessions++) {
  if (sessions > 100) throw new Error("too many sessions");
  try {
    const res = await stream({
      url,
      offset,
      live: "long-poll",
      headers: { Authorization: `Bearer ${token}` },
      onError: async () => ({}), // retry with the same parameters
      backoffOptions: { initialDelay: 50, maxDelay: 500, multiplier: 2 },
    });
    let closed = false;
    await new Promise((resolve, reject) => {
      res.subscribeJson(async (batch) => {
        for (const item of batch.items) process.stdout.write(JSON.stringify(item) + "\n");
        offset = batch.offset;
        if (batch.streamClosed) {
          closed = true;
          resolve();
        }
      });
      res.closed.then(resolve, reject);
    });
    if (closed || res.streamClosed) break;
  } catch (err) {
    process.stderr.write(`session ended: ${err}\n`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
process.stderr.write("stream closed\n");
