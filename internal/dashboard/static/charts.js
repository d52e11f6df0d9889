// Metrics page: live charts of the engine's own Prometheus metrics
// (GET /metrics, which needs no token), sampled every second in the page
// and drawn as SVG lines. Counters become rates between two samples; the
// put→delivery latency comes from the subscriber lag histogram, also
// between two samples, so each point covers the last second only.
//
// The figures are the engine node's, for all tenants: the endpoint is the
// one Prometheus scrapes.

import { el, set, fmtSeconds } from "./lib.js";

const SAMPLE_MS = 1000;
const KEEP = 300; // samples: five minutes

// parseMetrics reads the text exposition format into a list of
// { name, labels, value }; comments and malformed lines are skipped.
export function parseMetrics(textBody) {
  const out = [];
  for (const line of textBody.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

// sum adds up a metric over all its label sets that match `where`.
const sum = (metrics, name, where = {}) => metrics
  .filter((m) => m.name === name && Object.entries(where).every(([k, v]) => m.labels[k] === v))
  .reduce((n, m) => n + m.value, 0);

// buckets adds up a histogram's cumulative buckets over its label sets.
function buckets(metrics, name) {
  const by = new Map();
  for (const m of metrics) if (m.name === name + "_bucket") by.set(m.labels.le, (by.get(m.labels.le) || 0) + m.value);
  return [...by].map(([le, n]) => [le === "+Inf" ? Infinity : Number(le), n]).sort((a, b) => a[0] - b[0]);
}

// snapshot picks the figures the charts need from one scrape.
function snapshot(metrics) {
  return {
    t: Date.now(),
    events: sum(metrics, "runnel_events_appended_total"),
    started: sum(metrics, "runnel_events_appended_total", { type: "run.started" }),
    finished: sum(metrics, "runnel_runs_finished_total"),
    subscribers: sum(metrics, "runnel_subscribers"),
    lagSum: sum(metrics, "runnel_subscriber_lag_seconds_sum"),
    lagCount: sum(metrics, "runnel_subscriber_lag_seconds_count"),
    lagBuckets: buckets(metrics, "runnel_subscriber_lag_seconds"),
  };
}

// quantile estimates q from the difference of two cumulative bucket lists,
// as Prometheus' histogram_quantile does (linear within a bucket).
function quantile(q, now, before) {
  const counts = now.map(([le, n], i) => [le, n - (before[i] ? before[i][1] : 0)]);
  const total = counts.length ? counts[counts.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let prevLe = 0, prevN = 0;
  for (const [le, n] of counts) {
    if (n >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevN) / Math.max(n - prevN, 1e-9));
    }
    prevLe = le; prevN = n;
  }
  return prevLe;
}

const toMillis = (s) => (s === null ? null : s * 1000);

// point turns two snapshots into one point of every series; a counter that
// went down (the engine restarted) gives no point.
function point(a, b) {
  const dt = (b.t - a.t) / 1000;
  const rate = (k) => (b[k] >= a[k] ? (b[k] - a[k]) / dt : null);
  const n = b.lagCount - a.lagCount;
  return {
    t: b.t,
    events: rate("events"),
    started: rate("started"),
    finished: rate("finished"),
    subscribers: b.subscribers,
    lagMean: n > 0 ? ((b.lagSum - a.lagSum) / n) * 1000 : null,
    lagP95: n > 0 ? toMillis(quantile(0.95, b.lagBuckets, a.lagBuckets)) : null,
  };
}

// The sampler outlives the page: leaving the metrics page and coming back
// keeps the history (up to five minutes) of this browser tab. Points are
// rates over the time between two samples, whatever it was.
const sampler = { points: [], last: null, timer: 0, listeners: new Set(), error: "" };

async function sample() {
  try {
    const resp = await fetch("/metrics", { cache: "no-store", headers: { Accept: "text/plain" } });
    if (!resp.ok) throw new Error(`/metrics answered ${resp.status}`);
    const snap = snapshot(parseMetrics(await resp.text()));
    if (sampler.last) sampler.points.push(point(sampler.last, snap));
    if (sampler.points.length > KEEP) sampler.points.splice(0, sampler.points.length - KEEP);
    sampler.last = snap;
    sampler.error = "";
  } catch (err) {
    sampler.error = err.message;
  }
  for (const fn of sampler.listeners) fn();
  // Away from the metrics page the history goes on, at a slower pace.
  sampler.timer = setTimeout(sample, sampler.listeners.size ? SAMPLE_MS : 5 * SAMPLE_MS);
}

function startSampler() {
  if (!sampler.timer) sampler.timer = setTimeout(sample, 0);
}

const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}) => {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
};

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten, so the
// axis label is a round number.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= v);
}

// chart is one card: a title, the latest value of each series, and their
// lines over the kept window. series: [{ key, name, fmt }].
function chart(id, title, series) {
  const W = 600, H = 160;
  const now = el("div", { class: "chart-now" });
  const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "chart-svg", role: "img", "aria-label": title });
  const yMax = el("span", { class: "chart-ymax muted" });
  const since = el("span", {});
  const node = el("section", { class: "card chart", id }, el("h2", {}, title), now, el("div", { class: "chart-plot" }, yMax, box),
    el("div", { class: "chart-x muted" }, since, el("span", {}, "now")));
  const draw = (points) => {
    // The window grows with the history, from one minute to five, so a
    // page opened a moment ago does not squeeze its points into a corner.
    const t1 = Date.now();
    const kept = points.length ? t1 - points[0].t : 0;
    const t0 = t1 - Math.min(KEEP * SAMPLE_MS, Math.max(60_000, kept));
    since.textContent = "−" + fmtSeconds((t1 - t0) / 1000);
    const max = niceMax(Math.max(0, ...points.flatMap((p) => series.map((s) => p[s.key] ?? 0))));
    yMax.textContent = series[0].fmt(max);
    box.replaceChildren(
      ...[0.25, 0.5, 0.75].map((f) => svg("line", { x1: 0, x2: W, y1: H * f, y2: H * f, class: "chart-grid" })),
      ...series.map((s, i) => {
        const pts = points.filter((p) => p[s.key] !== null && p.t >= t0)
          .map((p) => `${(((p.t - t0) / (t1 - t0)) * W).toFixed(1)},${(H - (p[s.key] / max) * (H - 4)).toFixed(1)}`);
        return svg("polyline", { points: pts.join(" "), class: "chart-line c" + i, fill: "none", "vector-effect": "non-scaling-stroke" });
      }));
    const last = points[points.length - 1];
    // data-value and data-max (over the window) let tests and scripts read
    // the figures without parsing the text.
    set(now, series.map((s, i) => el("span", {
      class: "chart-val c" + i, "data-series": s.key, "data-max": Math.max(0, ...points.map((p) => p[s.key] ?? 0)),
      "data-value": last && last[s.key] !== null ? last[s.key] : "",
    },
      el("b", {}, last && last[s.key] !== null ? s.fmt(last[s.key]) : "–"), " ", s.name)));
  };
  return { node, draw };
}

const perSec = (v) => (v >= 100 ? Math.round(v) : v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, "") || "0") + "/s";
const count = (v) => String(Math.round(v));
const millis = (v) => fmtSeconds(v / 1000);

export function metricsPage(app) {
  startSampler();
  const charts = [
    chart("chart-events", "Events appended", [{ key: "events", name: "events/s", fmt: perSec }]),
    chart("chart-runs", "Runs", [{ key: "started", name: "started/s", fmt: perSec }, { key: "finished", name: "finished/s", fmt: perSec }]),
    chart("chart-subscribers", "Subscribers", [{ key: "subscribers", name: "open", fmt: count }]),
    chart("chart-latency", "Put → delivery latency", [{ key: "lagMean", name: "mean", fmt: millis }, { key: "lagP95", name: "p95", fmt: millis }]),
  ];
  const msg = el("div");
  set(app,
    el("div", { class: "page-head" }, el("h1", {}, "Metrics")),
    el("p", { class: "muted" }, "This engine node's own metrics (", el("a", { href: "/metrics" }, "/metrics"),
      "), all tenants, sampled every second while this tab is open."),
    msg,
    el("div", { class: "charts" }, charts.map((c) => c.node)));
  const chartsBox = app.querySelector(".charts");
  const redraw = () => {
    chartsBox.dataset.points = sampler.points.length;
    set(msg, sampler.error ? el("p", { class: "error", role: "alert" }, "Metrics: " + sampler.error) : null);
    for (const c of charts) c.draw(sampler.points);
  };
  redraw();
  sampler.listeners.add(redraw);
  return () => sampler.listeners.delete(redraw);
}
