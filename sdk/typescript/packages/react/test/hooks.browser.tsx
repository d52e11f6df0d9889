// The hooks' tests, in Chromium against a real engine (driven by
// sdk/typescript/aichat_test.go, TestReactHooks): the page reads a host, a
// live run, a finished run and browser tokens from its URL's hash, runs
// each case and puts the results in window.results.
import { StrictMode, useEffect } from "react";
import { createRoot, type Root } from "react-dom/client";
import { useRunStream, type StreamState } from "@runnel/react";

const params = new URLSearchParams(location.hash.slice(1));
const host = params.get("host")!;
const live = { runId: params.get("live")!, token: params.get("liveToken")! };
const done = { runId: params.get("done")!, token: params.get("doneToken")! };

// Every stream request the page makes, with its signal.
const streams: { url: string; signal: AbortSignal | undefined }[] = [];
let failNext = 0;
const realFetch = globalThis.fetch.bind(globalThis);
globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
  const url = String(input instanceof Request ? input.url : input);
  if (url.includes("/stream")) {
    streams.push({ url, signal: init?.signal ?? undefined });
    if (failNext > 0) {
      failNext--;
      throw new TypeError("Failed to fetch (test)");
    }
  }
  return realFetch(input, init);
};

function Probe(props: { runId: string; token?: string; getToken?: () => Promise<string>; onState: (s: StreamState) => void }) {
  const s = useRunStream(props.runId, { host, ...(props.token ? { token: props.token } : {}), ...(props.getToken ? { getToken: props.getToken } : {}) });
  useEffect(() => {
    props.onState(s);
  }, [s]);
  return <pre>{s.text}</pre>;
}

function mount(el: React.ReactElement): Root {
  const div = document.createElement("div");
  document.body.append(div);
  const root = createRoot(div);
  root.render(el);
  return root;
}

function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - start > ms) return reject(new Error(`timed out: ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

const results: Record<string, string> = {};
(window as unknown as { results: Record<string, string> }).results = results;

async function strictModeOpensOne(): Promise<string> {
  const before = streams.length;
  let last: StreamState | undefined;
  const root = mount(<StrictMode><Probe runId={done.runId} token={done.token} onState={(s) => (last = s)} /></StrictMode>);
  await until(() => last?.status === "completed", "the finished run replayed");
  root.unmount();
  const opened = streams.length - before;
  return opened === 1 && last!.text.length > 0 ? "ok" : `opened ${opened} subscriptions, text ${JSON.stringify(last?.text)}`;
}

async function unmountCloses(): Promise<string> {
  const before = streams.length;
  let last: StreamState | undefined;
  const root = mount(<Probe runId={live.runId} token={live.token} onState={(s) => (last = s)} />);
  await until(() => (last?.events.length ?? 0) > 3, "live events");
  if (last!.status !== "running") return `status ${last!.status} before unmount, want running`;
  const mine = streams.slice(before);
  root.unmount();
  await until(() => mine.every((s) => s.signal?.aborted), "subscriptions aborted", 5_000).catch(() => {});
  return mine.length === 1 && mine[0]!.signal?.aborted ? "ok" : `${mine.length} subscriptions, aborted: ${mine.map((s) => s.signal?.aborted)}`;
}

async function tokenRefreshedOnReconnect(): Promise<string> {
  let calls = 0;
  let last: StreamState | undefined;
  failNext = 2; // the first two connections fail: the listener reconnects
  const root = mount(
    <Probe runId={done.runId} getToken={async () => (calls++, done.token)} onState={(s) => (last = s)} />,
  );
  await until(() => last?.status === "completed" || last?.error !== undefined, "the run replayed");
  root.unmount();
  return calls >= 3 && last!.status === "completed" ? "ok" : `getToken called ${calls} times (want 3: one per connection), status ${last!.status}, error ${last!.error}`;
}

for (const [name, fn] of Object.entries({ strictModeOpensOne, unmountCloses, tokenRefreshedOnReconnect })) {
  try {
    results[name] = await fn();
  } catch (err) {
    results[name] = `error: ${String(err)}`;
  }
}
results["done"] = "yes";
