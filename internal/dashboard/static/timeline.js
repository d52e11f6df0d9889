// Run timeline: a waterfall of a run's steps and their attempts, with the
// child runs each step spawned nested under it (and their steps and
// children under them), on one time axis. Plain HTML bars: the rows are
// text a screen reader can read, and the bars are positioned in percent, so
// the picture scales with the page.

import { el, set, fmtSeconds, TERMINAL } from "./lib.js";

const MAX_ROWS = 400; // beyond this a waterfall stops being readable

const ms = (t) => (t ? new Date(t).getTime() : 0);

// stepSegments turns a step into bars: the wait for its first attempt, each
// attempt, and the backoff between a failed attempt and its retry.
// end is where unfinished bars stop (now, or the run's end).
function stepSegments(run, step, end) {
  const segs = [];
  const attempts = step.attempts || [];
  // A step is ready when its parents completed; the API does not say when
  // that was, so it is read off the parents' ends.
  let ready = ms(run.startedAt) || ms(run.createdAt);
  for (const p of step.parents || []) {
    const ps = (run.steps || []).find((s) => s.step === p);
    if (ps && ps.finishedAt) ready = Math.max(ready, ms(ps.finishedAt));
  }
  const firstStart = attempts.length ? ms(attempts[0].startedAt) : 0;
  if (step.status === "queued" || step.status === "pending" || firstStart) {
    const to = firstStart || end;
    if (ready && to > ready && step.status !== "pending") segs.push({ kind: "wait", status: "queued", from: ready, to, label: "queued" });
  }
  attempts.forEach((a, i) => {
    if (i > 0 && attempts[i - 1].finishedAt) {
      segs.push({ kind: "wait", status: "retry", from: ms(attempts[i - 1].finishedAt), to: ms(a.startedAt), label: "retry backoff" });
    }
    // An attempt still "running" when its run ended was stopped with it.
    const status = a.status === "running" && TERMINAL.has(run.status) ? "cancelled" : a.status;
    segs.push({
      kind: "attempt", status, attempt: a.attempt, from: ms(a.startedAt), to: a.finishedAt ? ms(a.finishedAt) : end,
      label: `attempt ${a.attempt}: ${status.replace("_", " ")}`, error: a.error,
    });
  });
  // Failed, and waiting for its retry.
  const last = attempts[attempts.length - 1];
  if (last && last.finishedAt && step.status === "queued") {
    segs.push({ kind: "wait", status: "retry", from: ms(last.finishedAt), to: end, label: "retry backoff" });
  }
  return segs;
}

// runSegments: a child run's wait in the queue, then its run.
function runSegments(run, end) {
  const created = ms(run.createdAt);
  const started = ms(run.startedAt);
  const finished = run.finishedAt ? ms(run.finishedAt) : end;
  const segs = [];
  if (created && (started || !TERMINAL.has(run.status))) {
    segs.push({ kind: "wait", status: "queued", from: created, to: started || finished, label: "queued" });
  }
  if (started) segs.push({ kind: "run", status: run.status, from: started, to: finished, label: run.status.replace("_", " ") });
  return segs;
}

// rows lists the timeline's rows, depth first: each step of a run, then the
// child runs that step spawned, each followed by its own rows.
function rows(tree, end) {
  const out = [];
  const endOf = (r) => (r.finishedAt ? ms(r.finishedAt) : end);
  const kidsOf = (run) => (run.children || []).map((c) => tree.runs.get(c.runId)).filter(Boolean);
  // visitChildren adds the runs a step spawned; a one-step child's step is
  // on its run's row, so its children come one level under that row.
  const visitChildren = (run, step, depth) => {
    for (const child of kidsOf(run).filter((k) => k.parentStepRunId === step.stepRunId)) {
      if (out.length >= MAX_ROWS) return;
      addRun(child, depth);
    }
  };
  // addRun adds a child run's row, then what it spawned. A child of one
  // step (the common case) is drawn on one row: its wait in the queue, then
  // its step's attempts.
  const addRun = (child, depth) => {
    const path = tree.path(child.runId);
    const only = (child.steps || []).length === 1 ? child.steps[0] : null;
    if (only) {
      const segs = runSegments(child, end).filter((s) => s.kind === "wait").concat(stepSegments(child, only, endOf(child)));
      out.push({ kind: "run", depth, run: child, step: only, segs, path });
      visitChildren(child, only, depth + 1);
      return;
    }
    out.push({ kind: "run", depth, run: child, segs: runSegments(child, end), path });
    visit(child.runId, depth + 1);
  };
  const visit = (runId, depth) => {
    const run = tree.runs.get(runId);
    if (!run || out.length >= MAX_ROWS) return;
    for (const step of run.steps || []) {
      out.push({ kind: "step", depth, run, step, segs: stepSegments(run, step, endOf(run)) });
      visitChildren(run, step, depth + 1);
    }
  };
  visit(tree.rootId, 0);
  return out.slice(0, MAX_ROWS);
}

// niceStep picks a tick spacing (1, 2 or 5 times a power of ten, in ms) that
// gives at most about six ticks over span.
function niceStep(span) {
  const raw = span / 6;
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || 10 * p;
}

// renderTimeline draws tree into box. onStep(run, step, attempt) is called
// when a step or attempt is clicked; a child run's row links to its page.
export function renderTimeline(box, tree, { onStep, now = Date.now() } = {}) {
  const root = tree.root;
  if (!root) return;
  const t0 = ms(root.createdAt) || ms(root.startedAt);
  let end = 0;
  for (const r of tree.runs.values()) end = Math.max(end, r.finishedAt ? ms(r.finishedAt) : now);
  const list = rows(tree, tree.done ? end : now);
  const span = Math.max(end - t0, 1);
  const pct = (t) => (((t - t0) / span) * 100).toFixed(3) + "%";

  const axis = el("div", { class: "tl-axis", "aria-hidden": "true" });
  const step = niceStep(span);
  for (let t = 0; t <= span; t += step) {
    const tick = el("span", { class: "tl-tick" }, fmtSeconds(t / 1000));
    tick.style.left = pct(t0 + t);
    axis.append(tick);
  }

  const body = list.map((row) => {
    const label = row.kind === "step"
      ? el("button", { class: "tl-name link", type: "button", title: "Show this step's output",
        onclick: () => onStep && onStep(row.run, row.step) },
      row.step.step, row.step.attempts.length > 1 ? el("span", { class: "muted" }, " ×" + row.step.attempts.length) : null)
      : el("a", { class: "tl-name", href: "#/runs/" + row.run.runId, title: "Open this child run" },
        "↳ ", row.run.workflow, el("span", { class: "muted" }, " " + row.path));
    const track = el("div", { class: "tl-track" });
    for (const s of row.segs) {
      const dur = fmtSeconds(Math.max(0, s.to - s.from) / 1000);
      const bar = el(s.kind === "attempt" ? "button" : "span", {
        class: `tl-seg tl-${s.kind} s-${s.status}`,
        type: s.kind === "attempt" ? "button" : null,
        "data-attempt": s.attempt,
        "data-status": s.status,
        title: `${s.label} · ${dur}` + (s.error ? "\n" + s.error : ""),
        "aria-label": `${s.label}, ${dur}`,
        onclick: s.kind === "attempt" && onStep ? () => onStep(row.run, row.step, s.attempt) : null,
      }, s.kind === "attempt" && row.step.attempts.length > 1 ? "#" + s.attempt : null);
      bar.style.left = pct(s.from);
      // A short attempt still gets room for its number and a click.
      const minWidth = s.kind === "attempt" && row.step.attempts.length > 1 ? 18 : 3;
      bar.style.width = `max(${minWidth}px, ${(((s.to - s.from) / span) * 100).toFixed(3)}%)`;
      track.append(bar);
    }
    const node = el("div", {
      class: "tl-row tl-" + row.kind, "data-kind": row.kind, "data-depth": row.depth,
      "data-run": row.run.runId, "data-step": row.step ? row.step.step : null, "data-nav-key": "tl:" + row.run.runId + ":" + (row.step ? row.step.step : ""),
    }, el("div", { class: "tl-label" }, label), track);
    node.style.setProperty("--depth", row.depth); // the indent is CSS's: narrower on a phone
    return node;
  });

  set(box,
    el("div", { class: "tl-row tl-head" }, el("div", { class: "tl-label muted" }, tree.runs.size > 1 ? tree.runs.size + " runs" : "step"), axis),
    body,
    tree.truncated || list.length >= MAX_ROWS ? el("p", { class: "muted" }, "Only the first runs of this tree are shown.") : null,
    el("div", { class: "tl-legend muted" },
      ["queued", "running", "completed", "failed", "timed_out", "cancelled", "retry"].map((s) =>
        el("span", {}, el("i", { class: "tl-key s-" + s }), s === "retry" ? "retry backoff" : s.replace("_", " "))),
      list.some((r) => r.kind === "run" && !r.step) ? el("span", {}, el("i", { class: "tl-key child-run" }), "child run of several steps") : null));
}
