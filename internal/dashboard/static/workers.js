// Workers page: the tenant's workers connected to this engine node
// (GET /api/v1/workers), polled every second, so a worker that starts or
// stops shows up or leaves within a second.

import { api, el, set, fmtAgo, fmtDuration, showError } from "./lib.js";

const SDK_NAMES = { go: "Go", python: "Python", typescript: "TypeScript" };

function sdkCell(w) {
  if (!w.sdk) return el("span", { class: "muted", title: w.userAgent }, w.userAgent || "unknown");
  return el("span", { title: w.userAgent }, SDK_NAMES[w.sdk] || w.sdk, w.sdkVersion ? el("span", { class: "muted" }, " " + w.sdkVersion) : null);
}

// slotsCell: used/total and a meter, so a full worker stands out.
function slotsCell(w) {
  const meter = el("meter", { min: 0, max: w.slots, value: w.slotsInUse, high: w.slots * 0.8, optimum: 0, "aria-label": "slots in use" });
  return el("span", { class: "slots" }, `${w.slotsInUse}/${w.slots} `, meter);
}

function runningCell(w) {
  if (!w.running.length) return el("span", { class: "muted" }, "idle");
  const shown = w.running.slice(0, 5);
  return el("div", { class: "running-steps" },
    shown.map((s) => el("div", {},
      s.runId
        ? el("a", { href: "#/runs/" + s.runId }, s.workflow, " › ", s.step)
        : el("span", { class: "mono" }, s.stepRunId.slice(-12)),
      el("span", { class: "muted" }, ` #${s.attempt} · ${fmtDuration(s.startedAt)}`))),
    w.running.length > shown.length ? el("div", { class: "muted" }, `and ${w.running.length - shown.length} more`) : null);
}

export function workersPage(app) {
  const tbody = el("tbody");
  const msg = el("div");
  const summary = el("span", { class: "muted", id: "workers-summary" });
  set(app,
    el("div", { class: "page-head" }, el("h1", {}, "Workers"), summary),
    el("p", { class: "muted" }, "Workers connected to this engine node, live. Start one with ",
      el("code", {}, "runnel worker"), " (the demo workflows) or any SDK's worker."),
    msg,
    el("div", { class: "table-wrap" }, el("table", { class: "workers" },
      el("thead", {}, el("tr", {}, el("th", {}, "Worker"), el("th", {}, "SDK"), el("th", {}, "Slots"),
        el("th", { class: "hide-narrow" }, "Workflows"), el("th", { class: "hide-narrow" }, "Heartbeat"), el("th", {}, "Running"))),
      tbody)));
  let stopped = false;
  let timer;
  async function load() {
    try {
      const { workers } = await api("GET", "/workers");
      if (stopped) return;
      set(msg);
      const used = workers.reduce((n, w) => n + w.slotsInUse, 0);
      const total = workers.reduce((n, w) => n + w.slots, 0);
      summary.textContent = `${workers.length} connected · ${used}/${total} slots in use`;
      set(tbody, workers.map((w) => el("tr", { class: "worker-row", "data-worker": w.name, "data-nav-key": "w:" + w.workerId },
        el("td", {}, el("strong", {}, w.name), el("div", { class: "muted mono small" }, w.workerId.slice(-12))),
        el("td", {}, sdkCell(w)),
        el("td", {}, slotsCell(w)),
        el("td", { class: "hide-narrow wrap" }, w.workflows.map((n) => el("code", {}, n))),
        el("td", { class: "hide-narrow" }, fmtAgo(w.heartbeatAt)),
        el("td", { class: "wrap" }, runningCell(w)))));
      if (!workers.length) {
        set(tbody, el("tr", {}, el("td", { colspan: 6, class: "muted empty" },
          "No worker is connected. Start one: ", el("code", {}, "runnel worker"), ".")));
      }
    } catch (err) {
      if (!stopped) showError(msg, err);
    }
    if (!stopped) timer = setTimeout(load, 1000);
  }
  load();
  return () => { stopped = true; clearTimeout(timer); };
}
