// Tree output: what every run of a tree (a parent, its children and
// grandchildren) put on its streams, merged into one view in the order it
// happened, each line marked with the run it came from.
//
// Each run is read as a durable stream (GET /v1/runs/{id}/stream, catch-up
// reads from the last offset), a few runs at a time. Not one live SSE
// subscription per run: a browser opens at most six connections per host
// over HTTP/1.1, and a tree has more runs than that. Not the metadata
// subscription either: it needs the parent to carry a metadata pair of its
// own, and would deliver every other run sharing that pair.

import { el, pool, token } from "./lib.js";

const POLL_MS = 400;
const text = new TextDecoder();

// sortKey orders events by their timestamp (RFC 3339 with up to nine
// fraction digits, which Date would cut to milliseconds): the fraction is
// padded so that the strings compare in time order.
function sortKey(ts) {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(ts || "");
  return m ? m[1] + "." + (m[2] || "").padEnd(9, "0") : "";
}

// treeOutput follows tree (see runtree.js) into out. It returns an object
// whose close() stops it; sync() starts reading runs the tree found since.
export function treeOutput(out, tree) {
  const readers = new Map(); // run id → { offset, closed }
  let stopped = false;
  let timer;
  let busy = false;

  const label = (runId, workflow) => {
    const path = tree.path(runId);
    return el("a", { class: "run-label d" + Math.min(tree.depth(runId), 3), href: "#/runs/" + runId, title: runId },
      path ? `${workflow} ${path}` : `${workflow} (this run)`);
  };

  // insert places a line by time: lines mostly arrive in order, so the
  // search starts from the end. Equal times keep their arrival order.
  const insert = (line, key) => {
    line.dataset.key = key;
    let at = out.lastElementChild;
    while (at && at.dataset.key > key) at = at.previousElementSibling;
    at ? at.after(line) : out.prepend(line);
  };

  const show = (runId, ev) => {
    const key = sortKey(ev.timestamp);
    if (ev.type === "step.stream") {
      const payload = ev.encoding === "base64" ? `[${atob(ev.payload).length} bytes]` : ev.payload;
      insert(el("div", { class: "tree-line", "data-run": runId, "data-path": tree.path(runId) },
        label(runId, ev.workflow), " ", el("span", { class: "chunk" }, payload)), key);
    } else if (ev.type.startsWith("run.") && ev.type !== "run.started") {
      insert(el("div", { class: "tree-line tree-end", "data-run": runId, "data-path": tree.path(runId) },
        label(runId, ev.workflow), " ", ev.type.slice(4).replace("_", " ")), key);
    } else if (ev.type === "step.failed" || ev.type === "step.timed_out") {
      insert(el("div", { class: "tree-line attempt-mark", "data-run": runId },
        label(runId, ev.workflow), ` ${ev.step}: attempt ${ev.attempt} ${ev.type.slice(5).replace("_", " ")}`), key);
    }
  };

  // read takes what one run has after its reader's offset.
  const read = async (runId) => {
    const r = readers.get(runId);
    for (;;) {
      const resp = await fetch(`/v1/runs/${runId}/stream?offset=${encodeURIComponent(r.offset)}`,
        { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
      if (!resp.ok && resp.status !== 204) return; // gone (retention) or no access: skip it this round
      const body = resp.status === 204 ? "" : text.decode(await resp.arrayBuffer());
      if (stopped) return;
      if (body) for (const ev of JSON.parse(body)) show(runId, ev);
      r.offset = resp.headers.get("Stream-Next-Offset") || r.offset;
      const upToDate = resp.headers.get("Stream-Up-To-Date") === "true" || resp.status === 204;
      r.closed = upToDate && resp.headers.get("Stream-Closed") === "true";
      if (upToDate) return;
    }
  };

  const round = async () => {
    if (stopped || busy) return;
    busy = true;
    try {
      for (const id of tree.ids()) if (!readers.has(id)) readers.set(id, { offset: "-1", closed: false });
      await pool([...readers.keys()].filter((id) => !readers.get(id).closed), 3, read);
    } catch (err) {
      // A network blip: the next round reads on from the same offsets.
    } finally {
      busy = false;
    }
    if (stopped) return;
    const open = [...readers.values()].some((r) => !r.closed);
    if (open || !tree.done) timer = setTimeout(round, POLL_MS);
    else out.dataset.state = "ended";
  };

  out.dataset.state = "following";
  round();
  return {
    sync() { if (!busy) { clearTimeout(timer); round(); } },
    close() { stopped = true; clearTimeout(timer); },
  };
}
