// A run and its descendants (children, grandchildren, …), kept up to date
// by reading GET /api/v1/runs/{id}. The timeline and the tree output of a
// run page both draw from it.

import { api, pool, TERMINAL } from "./lib.js";

// MAX_RUNS bounds the runs a page follows: a parent of a thousand children
// shows the first ones, and says so, rather than read them all every second.
export const MAX_RUNS = 200;

// runTree follows rootId's tree. A run is read again on every round until
// it is finished; once finished, its steps and children are final and it is
// not read again. Rounds run every `interval` ms while any run is unfinished
// and at once after poke(). onUpdate(tree) is called after every round.
export function runTree(rootId, { onUpdate, onError, interval = 1000 } = {}) {
  const runs = new Map(); // run id → the run as GET /runs/{id} returns it
  const order = [rootId]; // ids in discovery order: parents before children
  let stopped = false;
  let busy = false;
  let again = false;
  let timer;

  const tree = {
    rootId,
    runs,
    truncated: false,
    get root() { return runs.get(rootId); },
    // done: every run of the tree is finished (nothing more will change).
    get done() {
      return order.every((id) => runs.has(id) && TERMINAL.has(runs.get(id).status));
    },
    // ids in tree order (depth first, children in spawn order).
    ids() {
      const out = [];
      const walk = (id) => {
        if (!runs.has(id)) return;
        out.push(id);
        for (const c of runs.get(id).children || []) walk(c.runId);
      };
      walk(rootId);
      return out;
    },
    // path names a run by its place, counting from 0 as spawn indexes do:
    // "" for the root, "1" for its second child, "1.0" for that child's
    // first child.
    path(id) {
      const parts = [];
      for (let r = runs.get(id); r && r.runId !== rootId; r = runs.get(r.parentRunId)) {
        const parent = runs.get(r.parentRunId);
        if (!parent) break;
        parts.unshift((parent.children || []).findIndex((c) => c.runId === r.runId));
      }
      return parts.join(".");
    },
    depth(id) {
      const p = tree.path(id);
      return p === "" ? 0 : p.split(".").length;
    },
    poke() { round(); },
    close() { stopped = true; clearTimeout(timer); },
  };

  async function round() {
    if (stopped) return;
    if (busy) { again = true; return; }
    busy = true;
    clearTimeout(timer);
    try {
      // Read the unfinished runs; a newly read run may name children never
      // seen, which are read in the same round (the loop goes on).
      const read = new Set();
      for (;;) {
        const due = order.filter((id) => !read.has(id) && !(runs.has(id) && TERMINAL.has(runs.get(id).status)));
        if (!due.length) break;
        await pool(due, 4, async (id) => {
          read.add(id);
          const r = await api("GET", "/runs/" + id);
          runs.set(id, r);
          for (const c of r.children || []) {
            if (order.includes(c.runId)) continue;
            if (order.length >= MAX_RUNS) { tree.truncated = true; continue; }
            order.push(c.runId);
          }
        });
        if (stopped) return;
      }
      if (onUpdate) onUpdate(tree);
    } catch (err) {
      if (!stopped && onError) onError(err);
    } finally {
      busy = false;
    }
    if (stopped) return;
    if (again) { again = false; return round(); }
    if (!tree.done) timer = setTimeout(round, interval);
  }

  round();
  return tree;
}
