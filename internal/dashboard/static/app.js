// Runnel dashboard. Plain ES module, no dependencies: it uses only the
// public HTTP API (/api/v1) and, for its live streams, the engine's browser
// client (/sdk/runnel.js), as any page could.

import { subscribe } from "/sdk/runnel.js";
import {
  TOKEN_KEY, TERMINAL, takeTokenFromURL, token, api, el, set, badge, fmtTime, fmtDuration, fmtJSON, showError,
  fmtSeconds, shortId, pool,
} from "./lib.js";
import { runTree } from "./runtree.js";
import { renderTimeline } from "./timeline.js";
import { treeOutput } from "./treeoutput.js";
import { workersPage } from "./workers.js";
import { metricsPage } from "./charts.js";
import { installKeys, resetSelection } from "./keys.js";

const app = document.getElementById("app");

// Demo inputs prefilled in the trigger form.
const DEMO_INPUTS = {
  "demo-text": { chunks: 20, intervalMs: 50 },
  "demo-file": { bytes: 65536 },
  "demo-parent": { n: 3 },
  "demo-child": { index: 0 },
  "demo-flaky": { failAttempts: 1 },
  "demo-slow": { seconds: 30 },
};

// What each demo does, under the form: a first-time user learns there what
// the input's fields change (PRODUCT.md section 4.1).
const DEMO_HINTS = {
  "demo-text": "Streams \"chunks\" words, one every \"intervalMs\", like an LLM's tokens.",
  "demo-file": "Streams one binary payload of \"bytes\" bytes (over 4 MiB is refused).",
  "demo-parent": "Spawns \"n\" demo-child runs and waits for them. Add \"spawn\": 2 to give each child two children of its own.",
  "demo-child": "Streams five chunks; \"spawn\": k spawns k children first.",
  "demo-flaky": "Fails its first \"failAttempts\" attempts, then succeeds (3 retries).",
  "demo-slow": "Streams a tick a second for \"seconds\"; try cancelling it.",
};

// ---- pages -----------------------------------------------------------------

let cleanup = () => {};

// The pages of the navigation: the hash they answer to and the nav link
// marked while they show.
const NAV = [
  ["nav-runs", /^#\/runs/],
  ["nav-workers", /^#\/workers/],
  ["nav-metrics", /^#\/metrics/],
  ["nav-streams", /^#\/streams/],
  ["nav-trigger", /^#\/trigger/],
];

function route() {
  cleanup();
  cleanup = () => {};
  resetSelection();
  takeTokenFromURL();
  document.getElementById("logout").hidden = !token();
  if (!token()) return loginPage();
  const hash = location.hash || "#/runs";
  for (const [id, re] of NAV) {
    const link = document.getElementById(id);
    link.classList.toggle("active", re.test(hash));
    if (re.test(hash)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const run = hash.match(/^#\/runs\/([0-9a-f-]+)$/);
  if (run) return runPage(run[1]);
  const stream = hash.match(/^#\/streams\/(.+)$/);
  if (stream) return streamPage(decodeURIComponent(stream[1]));
  if (hash.startsWith("#/streams")) return streamsPage();
  if (hash.startsWith("#/workers")) return (cleanup = workersPage(app));
  if (hash.startsWith("#/metrics")) return (cleanup = metricsPage(app));
  if (hash.startsWith("#/trigger")) return triggerPage(new URLSearchParams(hash.split("?")[1] || ""));
  return runsPage(new URLSearchParams(hash.split("?")[1] || ""));
}

function loginPage() {
  const input = el("input", { type: "password", id: "token", placeholder: "rnl_…", autocomplete: "off", required: true });
  const msg = el("p", { class: "muted" });
  const form = el("form", {
    class: "card login",
    onsubmit: async (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      try {
        await api("GET", "/runs?limit=1");
        location.hash = "#/runs";
        route();
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        msg.className = "error";
        msg.textContent = err.message;
      }
    },
  },
    el("h1", {}, "Sign in"),
    el("p", { class: "muted" }, "Paste an API token. ", el("code", {}, "runnel dev"),
      " prints one (and a link that signs you in). It is kept only in this browser tab."),
    el("label", { for: "token" }, "Token"), input,
    el("button", { type: "submit", class: "primary" }, "Sign in"), msg);
  set(app, form);
  input.focus();
}

// Runs in the tree view: the runs unfolded (by id), and what was read of
// the runs shown under them (GET /runs/{id}, which lists a run's children).
// Kept across refreshes and visits to a run page and back.
const treeView = { expanded: new Set(), read: new Map() };

// Runs list: newest first, filters, paging; refreshed every 1.5 s so new runs
// and status changes appear without reload. In the tree view (?view=tree)
// child runs are folded under their parent instead of listed among all
// runs; unfolding a run shows its children, and theirs.
function runsPage(params) {
  const filters = { workflow: params.get("workflow") || "", status: params.get("status") || "", meta: params.get("meta") || "" };
  const asTree = params.get("view") === "tree";
  let before = params.get("before") || "";
  const tbody = el("tbody");
  const pager = el("div", { class: "pager" });
  const msg = el("div");
  const field = (name, label, input) => el("label", { class: "filter" }, el("span", {}, label), input);
  const wf = el("input", { name: "workflow", value: filters.workflow, placeholder: "any" });
  const st = el("select", { name: "status" }, el("option", { value: "" }, "any"),
    ...["queued", "running", "completed", "failed", "cancelled", "timed_out"].map((s) =>
      el("option", { value: s, selected: s === filters.status }, s.replace("_", " "))));
  const meta = el("input", { name: "meta", value: filters.meta, placeholder: "key:value" });
  const query = (tree) => {
    const q = new URLSearchParams();
    if (wf.value) q.set("workflow", wf.value.trim());
    if (st.value) q.set("status", st.value);
    if (meta.value) q.set("meta", meta.value.trim());
    if (tree) q.set("view", "tree");
    return "#/runs?" + q.toString();
  };
  const form = el("form", {
    class: "filters",
    onsubmit: (e) => {
      e.preventDefault();
      location.hash = query(asTree);
    },
  }, field("workflow", "Workflow", wf), field("status", "Status", st), field("meta", "Metadata", meta),
    el("button", { type: "submit" }, "Filter"));
  const viewToggle = el("button", {
    id: "view-toggle", type: "button", "aria-pressed": asTree ? "true" : "false",
    title: "Fold child runs under their parent (t)",
    onclick: () => { location.hash = query(!asTree); },
  }, asTree ? "▾ Tree" : "☰ List");

  set(app,
    el("div", { class: "page-head" }, el("h1", {}, "Runs"),
      el("div", { class: "head-actions" }, viewToggle, el("a", { class: "button primary", href: "#/trigger" }, "Trigger a run"))),
    form, msg,
    el("div", { class: "table-wrap" }, el("table", { class: "runs" + (asTree ? " tree" : "") },
      el("thead", {}, el("tr", {}, el("th", {}, "Run"), el("th", {}, "Workflow"), el("th", {}, "Status"),
        el("th", { class: "hide-narrow" }, "Started"), el("th", {}, "Duration"), el("th", { class: "hide-narrow" }, "Metadata"))),
      tbody)),
    pager);

  // row renders one run; in the tree view with its fold button, indented
  // by its depth.
  const row = (r, t) => {
    const twisty = !t ? null : t.kids > 0
      ? el("button", {
        class: "twisty link", type: "button", "aria-expanded": t.open ? "true" : "false", "data-run": r.runId,
        "aria-label": (t.open ? "Fold " : "Unfold ") + t.kids + " child runs",
        onclick: () => {
          if (t.open) treeView.expanded.delete(r.runId);
          else treeView.expanded.add(r.runId);
          clearTimeout(timer);
          load();
        },
      }, t.open ? "▾" : "▸")
      : el("span", { class: "twisty" });
    const first = el("td", { class: "run-cell" }, twisty,
      el("a", { href: "#/runs/" + r.runId, class: "mono" }, shortId(r.runId)));
    if (t) first.style.paddingLeft = 14 + t.depth * 20 + "px";
    return el("tr", { "data-run": r.runId, "data-depth": t ? t.depth : null, "data-nav-key": "run:" + r.runId, class: "run-row" },
      first,
      el("td", {}, r.workflow,
        t && t.kids ? el("span", { class: "muted kids" }, ` · ${t.kids} ${t.kids === 1 ? "child" : "children"}`) : null,
        t && t.orphan ? el("a", { class: "muted kids", href: "#/runs/" + r.parentRunId, title: "its parent is on another page" }, " · ↰ parent") : null),
      el("td", { class: "status" }, badge(r.status)),
      el("td", { class: "hide-narrow" }, fmtTime(r.startedAt || r.createdAt)),
      el("td", {}, fmtDuration(r.startedAt, r.finishedAt)),
      el("td", { class: "hide-narrow meta" }, Object.entries(r.additionalMetadata || {}).map(([k, v]) => el("code", {}, k + "=" + v))));
  };

  // treeRows reads what the unfolded runs need (their children, and each
  // child's own children) and renders the page's runs as trees.
  async function treeRows(runs) {
    const onPage = new Map(runs.map((r) => [r.runId, r]));
    const kidsOnPage = new Map();
    for (const r of runs) {
      if (!r.parentRunId) continue;
      if (!kidsOnPage.has(r.parentRunId)) kidsOnPage.set(r.parentRunId, []);
      kidsOnPage.get(r.parentRunId).unshift({ runId: r.runId }); // the page is newest first; spawn order is oldest first
    }
    const fresh = (id) => treeView.read.has(id) && TERMINAL.has(treeView.read.get(id).status);
    const readRuns = (ids) => pool(ids.filter((id) => !fresh(id)).slice(0, 60), 4, async (id) => {
      treeView.read.set(id, await api("GET", "/runs/" + id));
    });
    // Unfolded runs first (their children lists), then those children (for
    // their status and whether they have children of their own).
    const open = [...treeView.expanded];
    await readRuns(open);
    await readRuns(open.flatMap((id) => (treeView.read.get(id)?.children || []).map((c) => c.runId)));
    const kidsOf = (id) => treeView.read.get(id)?.children || kidsOnPage.get(id) || [];
    const out = [];
    const walk = (r, depth, orphan) => {
      const kids = kidsOf(r.runId);
      const isOpen = treeView.expanded.has(r.runId);
      out.push(row(r, { depth, kids: kids.length, open: isOpen, orphan }));
      if (!isOpen || depth > 8) return;
      for (const c of kids) {
        const child = treeView.read.get(c.runId) || onPage.get(c.runId);
        if (child) walk(child, depth + 1, false);
      }
    };
    for (const r of runs) {
      if (r.parentRunId && onPage.has(r.parentRunId)) continue; // shown under its parent
      walk(r, 0, !!r.parentRunId); // a child whose parent is on another page is a root here
    }
    return out;
  }

  let stopped = false;
  let timer;
  let latest = 0; // the newest load: an older one that ends later shows nothing
  async function load() {
    const seq = ++latest;
    const q = new URLSearchParams({ limit: asTree ? "50" : "25" });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (before) q.set("before", before);
    try {
      const data = await api("GET", "/runs?" + q.toString());
      const rows = asTree ? await treeRows(data.runs) : data.runs.map((r) => row(r, null));
      if (stopped || seq !== latest) return;
      set(msg);
      set(tbody, rows);
      if (data.runs.length === 0) {
        set(tbody, el("tr", {}, el("td", { colspan: 6, class: "muted empty" },
          "No runs yet. ", el("a", { href: "#/trigger" }, "Trigger one"), ".")));
      }
      set(pager, ...[
        before ? el("button", { onclick: () => { before = ""; load(); } }, "Newest") : null,
        data.nextBefore ? el("button", { onclick: () => { before = data.nextBefore; load(); } }, "Older →") : null,
      ].filter(Boolean));
    } catch (err) {
      if (!stopped && seq === latest) showError(msg, err);
    }
    if (!stopped && seq === latest) {
      clearTimeout(timer);
      timer = setTimeout(load, 1500);
    }
  }
  load();
  cleanup = () => { stopped = true; clearTimeout(timer); };
}

async function triggerPage(params) {
  const msg = el("div");
  set(app, el("h1", {}, "Trigger a run"), msg);
  let workflows;
  try {
    workflows = (await api("GET", "/workflows")).workflows;
  } catch (err) {
    return showError(msg, err);
  }
  if (workflows.length === 0) {
    return set(msg, el("p", { class: "muted" }, "No workflows are registered yet: start a worker (runnel worker, or runnel dev)."));
  }
  const pick = params.get("workflow") || (workflows.find((w) => w.name === "demo-text") || workflows[0]).name;
  const select = el("select", { id: "workflow", name: "workflow" },
    ...workflows.map((w) => el("option", { value: w.name, selected: w.name === pick }, w.name)));
  const input = el("textarea", { id: "input", rows: 6, spellcheck: "false" });
  const meta = el("textarea", { id: "meta", rows: 3, spellcheck: "false", placeholder: "key=value, one per line" });
  const steps = el("p", { class: "muted" });
  const fill = () => {
    input.value = JSON.stringify(DEMO_INPUTS[select.value] || {}, null, 2);
    const wf = workflows.find((w) => w.name === select.value);
    steps.textContent = "Steps: " + wf.steps.map((s) => s.name + (s.parents ? " ← " + s.parents.join(", ") : "")).join(" · ") +
      (DEMO_HINTS[select.value] ? ". " + DEMO_HINTS[select.value] : "");
  };
  select.addEventListener("change", fill);
  fill();
  const form = el("form", {
    class: "card trigger",
    onsubmit: async (e) => {
      e.preventDefault();
      let body;
      try {
        body = { input: input.value.trim() ? JSON.parse(input.value) : {}, additionalMetadata: {} };
        for (const line of meta.value.split("\n")) {
          if (!line.trim()) continue;
          const i = line.indexOf("=");
          if (i <= 0) throw new Error(`metadata line "${line}": want key=value`);
          body.additionalMetadata[line.slice(0, i).trim()] = line.slice(i + 1).trim();
        }
      } catch (err) {
        return showError(msg, new Error("Input: " + err.message));
      }
      try {
        const { runId } = await api("POST", "/workflows/" + encodeURIComponent(select.value) + "/runs", body);
        location.hash = "#/runs/" + runId;
      } catch (err) {
        showError(msg, err);
      }
    },
  },
    el("label", { for: "workflow" }, "Workflow"), select, steps,
    el("label", { for: "input" }, "Input (JSON)"), input,
    el("label", { for: "meta" }, "Additional metadata"), meta,
    el("button", { type: "submit", class: "primary", id: "start" }, "Start run"));
  app.append(form);
}

// AI SDK UI message chunks (what @runnel/ai's writeUIMessageStream and Go's
// aichunk put, one per event, as JSON) are shown as the message they
// assemble: its text, reasoning and tool calls, not the raw chunks.
const UI_CHUNK_TYPES = new Set(["start", "finish", "abort", "start-step", "finish-step", "reset-step", "message-metadata",
  "text-start", "text-delta", "text-end", "reasoning-start", "reasoning-delta", "reasoning-end", "error",
  "tool-input-start", "tool-input-delta", "tool-input-available", "tool-input-error", "tool-output-available",
  "tool-output-error", "tool-output-denied", "tool-approval-request", "source-url", "source-document", "file"]);

function uiMessageChunk(payload) {
  if (typeof payload !== "string" || payload[0] !== "{") return null;
  try {
    const c = JSON.parse(payload);
    return c && typeof c.type === "string" && (UI_CHUNK_TYPES.has(c.type) || c.type.startsWith("data-")) ? c : null;
  } catch {
    return null;
  }
}

function uiMessage() {
  const body = el("div", { class: "ai-body" });
  const state = el("span", { class: "muted" }, "streaming…");
  const node = el("div", { class: "ai-message" }, el("div", { class: "muted" }, "assistant message ", state), body);
  const parts = new Map(); // text/reasoning id or tool call id → element
  const tools = new Map(); // tool call id → { name, input, output }
  const showTool = (id) => {
    const t = tools.get(id);
    let text = `🔧 ${t.name}(${t.input === undefined ? "…" : JSON.stringify(t.input)})`;
    if (t.output !== undefined) text += " → " + JSON.stringify(t.output);
    if (t.error) text += " ✗ " + t.error;
    parts.get("tool:" + id).textContent = text;
  };
  const tool = (c) => {
    if (!tools.has(c.toolCallId)) {
      tools.set(c.toolCallId, { name: c.toolName || "tool" });
      const code = el("code", { class: "ai-tool" });
      parts.set("tool:" + c.toolCallId, code);
      body.append(code);
    }
    return tools.get(c.toolCallId);
  };
  return {
    node,
    add(c) {
      switch (c.type) {
        case "text-start":
        case "reasoning-start": {
          const span = el("span", { class: c.type === "text-start" ? "ai-text" : "ai-reasoning" });
          parts.set(c.type[0] + c.id, span);
          body.append(span);
          break;
        }
        case "text-delta":
        case "reasoning-delta": {
          const span = parts.get(c.type[0] + c.id);
          if (span) span.textContent += c.delta;
          break;
        }
        case "tool-input-start":
        case "tool-input-available":
        case "tool-input-error":
          tool(c).input = c.input;
          if (c.errorText) tools.get(c.toolCallId).error = c.errorText;
          showTool(c.toolCallId);
          break;
        case "tool-output-available":
        case "tool-output-error":
          if (tools.has(c.toolCallId)) {
            tools.get(c.toolCallId).output = c.output;
            if (c.errorText) tools.get(c.toolCallId).error = c.errorText;
            showTool(c.toolCallId);
          }
          break;
        case "error":
          body.append(el("div", { class: "error" }, c.errorText));
          break;
        case "finish":
          state.textContent = c.finishReason ? "finished (" + c.finishReason + ")" : "finished";
          break;
        case "abort":
          state.textContent = "aborted";
          break;
      }
    },
  };
}

// A binary payload: a download link, and the picture itself when it is one.
function binaryItem(bytes, index) {
  const kind = sniffImage(bytes);
  const blob = new Blob([bytes], { type: kind || "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  return el("div", { class: "binary" },
    kind ? el("img", { src: url, alt: "streamed image " + index }) : null,
    el("a", { href: url, download: "payload-" + index + (kind ? "." + kind.split("/")[1] : ".bin") },
      "⬇ binary payload, " + bytes.length.toLocaleString() + " bytes"));
}

function sniffImage(b) {
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "image/png";
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return "image/gif";
  return "";
}

// Run page: details and steps (refreshed on every step or run event) and the
// live stream output. A reload replays the run's log from the start, so the
// output is rebuilt with each chunk exactly once.
async function runPage(runId) {
  const head = el("div", { class: "page-head" });
  const details = el("div", { class: "details" });
  const stepsBox = el("div", { class: "steps" });
  const output = el("div", { id: "output", class: "output", "aria-live": "polite" });
  const position = el("span", { id: "position", class: "mono muted" }, "–");
  const state = el("span", { id: "stream-state", class: "muted" }, "connecting…");
  const follow = el("input", { type: "checkbox", id: "follow", checked: true });
  // A run may write several named streams: every one is shown, each line
  // marked with its stream, and the picker narrows the output to one.
  const picker = el("select", { id: "stream-picker", "aria-label": "Stream", hidden: true },
    el("option", { value: "*" }, "all streams"));
  const seenStreams = new Set();
  const applyPicker = () => {
    for (const node of output.children) {
      const s = node.getAttribute("data-stream");
      node.hidden = picker.value !== "*" && s !== null && s !== picker.value;
    }
  };
  picker.addEventListener("change", applyPicker);
  const msg = el("div");
  const timelineBox = el("div", { id: "timeline", class: "timeline" }, el("p", { class: "muted" }, "Loading…"));
  // The output card shows this run's stream, or, for a run with children,
  // its whole tree's (treeoutput.js): two tabs over one place.
  const treeBox = el("div", { id: "tree-output", class: "output", "aria-live": "polite", hidden: true });
  const outputTitle = el("h2", {}, "Live output");
  const tabRun = el("button", { type: "button", role: "tab", id: "tab-run", "aria-selected": "true", onclick: () => showTab("run", true) }, "This run");
  const tabTree = el("button", { type: "button", role: "tab", id: "tab-tree", "aria-selected": "false", onclick: () => showTab("tree", true) }, "Whole tree");
  const tabs = el("div", { class: "tabs", role: "tablist", hidden: true }, tabRun, tabTree);
  set(app,
    el("p", { class: "crumbs" }, el("a", { href: "#/runs" }, "← Runs")),
    head, msg,
    el("section", { class: "card" }, el("h2", {}, "Timeline"), timelineBox),
    el("section", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Run"), details),
      el("div", { class: "card" }, el("h2", {}, "Steps"), stepsBox)),
    el("section", { class: "card stream" },
      el("div", { class: "stream-head" }, outputTitle, tabs,
        el("label", { class: "toggle" }, follow, " Follow"), picker,
        state, el("span", { class: "muted" }, "position ", position)),
      output, treeBox));

  let stopped = false;
  let sub;
  let run;
  let tree;
  let treeOut = null;
  let tabChosen = false; // the user picked a tab: no more switching for them
  cleanup = () => {
    stopped = true;
    if (sub) sub.close();
    if (tree) tree.close();
    if (treeOut) treeOut.close();
  };

  // showTab shows this run's output or its tree's; the tree's is read only
  // once it is first shown.
  function showTab(which, chosen) {
    tabChosen = tabChosen || chosen;
    const isTree = which === "tree";
    output.hidden = isTree;
    treeBox.hidden = !isTree;
    picker.hidden = isTree || seenStreams.size < 2;
    tabRun.setAttribute("aria-selected", String(!isTree));
    tabTree.setAttribute("aria-selected", String(isTree));
    if (isTree && !treeOut) treeOut = treeOutput(treeBox, tree);
  }

  // A click on a step in the timeline: a step of this run shows its card
  // and its output (the attempt's lines marked); a child's opens its page.
  const onStep = (r, step, attempt) => {
    if (r.runId !== runId) {
      location.hash = "#/runs/" + r.runId;
      return;
    }
    showTab("run", true);
    const card = stepsBox.querySelector(`[data-step="${CSS.escape(step.step)}"]`);
    for (const n of app.querySelectorAll(".hl")) n.classList.remove("hl");
    if (card) {
      card.classList.add("hl");
      card.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
    const lines = [...output.querySelectorAll(`[data-step="${CSS.escape(step.step)}"]`)]
      .filter((n) => !attempt || n.dataset.attempt === String(attempt));
    for (const n of lines) n.classList.add("hl");
    if (lines.length) output.scrollTop = lines[0].offsetTop - output.offsetTop - 8;
  };

  // The Cancel button is one node for the run's whole life: runTree
  // redraws the run every second and on every event, and a click must not
  // land on a button being replaced (between queued and running, say). Only
  // the heading follows the status; the button goes once the run has ended.
  const title = el("h1");
  const cancel = el("button", {
    class: "danger", id: "cancel",
    onclick: async (e) => {
      e.target.disabled = true;
      try { await api("POST", "/runs/" + runId + "/cancel"); } catch (err) { showError(msg, err); }
    },
  }, "Cancel run");
  set(head, title);
  let headStatus = "";
  const renderRun = (r) => {
    run = r;
    if (r.status !== headStatus) {
      headStatus = r.status;
      set(title, r.workflow, " ", badge(r.status));
      if (TERMINAL.has(r.status)) cancel.remove();
      else if (!cancel.isConnected) head.append(cancel);
    }
    const row = (k, v) => [el("dt", {}, k), el("dd", {}, v)];
    set(details, el("dl", {},
      row("Run id", el("span", { class: "mono" }, r.runId)),
      row("Status", badge(r.status)),
      row("Started", fmtTime(r.startedAt)),
      row("Duration", fmtDuration(r.startedAt, r.finishedAt)),
      r.parentRunId ? row("Parent", el("a", { href: "#/runs/" + r.parentRunId, class: "mono" }, r.parentRunId)) : null,
      (r.children || []).length ? row("Children", el("div", {}, r.children.map((c) =>
        el("div", {}, el("a", { href: "#/runs/" + c.runId, class: "mono" }, c.runId.slice(-12)), " ", badge(c.status))))) : null,
      row("Metadata", Object.keys(r.additionalMetadata).length
        ? Object.entries(r.additionalMetadata).map(([k, v]) => el("code", {}, k + "=" + v)) : el("span", { class: "muted" }, "none")),
      row("Input", el("pre", {}, fmtJSON(r.input))),
      r.output ? row("Output", el("pre", {}, fmtJSON(r.output))) : null,
      r.error ? row("Error", el("pre", { class: "error" }, r.error)) : null));
    set(stepsBox, ...(r.steps || []).map((s) => el("div", { class: "step", "data-step": s.step },
      el("div", { class: "step-head" },
        el("strong", {}, s.step), badge(s.status),
        el("span", { class: "muted" }, "attempt " + s.attempt),
        el("span", { class: "muted" }, fmtDuration(s.startedAt, s.finishedAt)),
        s.parents.length ? el("span", { class: "muted" }, "after " + s.parents.join(", ")) : null),
      s.output !== undefined ? el("pre", {}, fmtJSON(s.output)) : null,
      s.error && s.status !== "completed" ? el("pre", { class: "error" }, s.error) : null,
      s.attempts.length > 1 ? el("ol", { class: "attempts" }, s.attempts.map((a) =>
        el("li", {}, badge(a.status), " ", fmtDuration(a.startedAt, a.finishedAt), a.error ? " – " + a.error : ""))) : null)));
  };

  // The run, its steps and its descendants are read by runTree: on every
  // event of this run's stream (poke), and every second while any run of
  // the tree is unfinished (children have streams of their own).
  const first = new Promise((resolve) => {
    tree = runTree(runId, {
      onUpdate(t) {
        if (stopped) return;
        set(msg);
        renderRun(t.root);
        renderTimeline(timelineBox, t, { onStep });
        if (t.runs.size > 1) {
          tabs.hidden = false;
          tabTree.textContent = `Whole tree (${t.runs.size} runs)`;
          if (!tabChosen && treeBox.hidden) showTab("tree", false);
        }
        if (treeOut) treeOut.sync();
        resolve();
      },
      onError(err) {
        if (!stopped) showError(msg, err);
        resolve();
      },
    });
  });
  const refreshSoon = () => tree.poke();

  await first;
  if (stopped || !run) return;

  // The stream uses a short-lived read-only browser token scoped to this run,
  // so the API token never appears in a URL. The client asks for one before
  // each connection it opens itself, so an expired token is replaced.
  const mint = async () => (await api("POST", "/tokens", { runId, ttl: "1h" })).token;

  let chunkCount = 0;
  let lastAttempt = 0;
  const append = (node, stream) => {
    const name = stream || "default";
    node.setAttribute("data-stream", name);
    if (!seenStreams.has(name)) {
      seenStreams.add(name);
      picker.append(el("option", { value: name }, name));
      picker.hidden = seenStreams.size < 2;
    }
    node.hidden = picker.value !== "*" && picker.value !== name;
    output.append(node);
    if (follow.checked) output.scrollTop = output.scrollHeight;
  };
  let message = null; // the AI SDK message the current attempt assembles
  const onStream = (ev) => {
    if (ev.attempt !== lastAttempt) {
      if (lastAttempt !== 0) append(el("div", { class: "attempt-mark" }, `— ${ev.step}, attempt ${ev.attempt} —`), ev.stream);
      lastAttempt = ev.attempt;
      message = null;
    }
    chunkCount++;
    const chunk = uiMessageChunk(ev.payload);
    if (chunk) {
      if (!message) {
        message = uiMessage();
        append(message.node, ev.stream);
        outputTitle.textContent = "Chat"; // an AI SDK message stream reads as a conversation
      }
      message.add(chunk);
      if (follow.checked) output.scrollTop = output.scrollHeight;
      return;
    }
    const label = ev.stream ? el("span", { class: "stream-name" }, ev.stream + " ›") : null;
    if (ev.payload instanceof Uint8Array) {
      const item = binaryItem(ev.payload, chunkCount);
      append(label ? el("div", {}, label, item) : item, ev.stream);
    }
    else append(el("span", { class: "chunk", "data-attempt": ev.attempt, "data-step": ev.step }, label, ev.payload), ev.stream);
  };
  // Status shown next to the output: text and class.
  const STATES = {
    connecting: ["connecting…", "muted"],
    live: ["live", "live"],
    reconnecting: ["reconnecting…", "muted"],
    ended: ["ended", "muted"],
    error: ["stream failed", "error"],
  };
  sub = subscribe(runId, {
    token: mint,
    onEvent(ev) {
      position.textContent = ev.position;
      if (ev.type === "step.stream") onStream(ev);
      else refreshSoon();
    },
    onStatus(status, detail) {
      [state.textContent, state.className] = STATES[status];
      if (status === "ended") refreshSoon();
      if (status === "error") showError(msg, new Error("Live output: " + detail.message));
    },
  });
}

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = "#/runs";
  route();
});
document.getElementById("keys-help").addEventListener("click", () => document.dispatchEvent(new KeyboardEvent("keydown", { key: "?" })));
window.addEventListener("hashchange", route);
window.addEventListener("runnel:signed-out", route);
installKeys();
route();

// ---- standalone durable streams ------------------------------------------

// streamsPage lists the tenant's durable streams (GET /api/v1/streams).
function streamsPage() {
  const tbody = el("tbody");
  const msg = el("div");
  set(app,
    el("div", { class: "page-head" }, el("h1", {}, "Streams")),
    el("p", { class: "muted" }, "Standalone durable streams: written and read through the Durable Streams protocol at ",
      el("code", {}, "/v1/stream/NAME"), ", by backends, steps and ", el("code", {}, "runnel streams"), "."),
    msg,
    el("div", { class: "table-wrap" }, el("table", { class: "streams" },
      el("thead", {}, el("tr", {}, el("th", {}, "Stream"), el("th", {}, "Content type"), el("th", {}, "State"),
        el("th", { class: "hide-narrow" }, "Created"))),
      tbody)));
  let stopped = false;
  let timer;
  let shown = null; // the listing drawn last: an unchanged one is not redrawn
  async function load() {
    try {
      const data = await api("GET", "/streams");
      if (stopped) return;
      set(msg);
      const listing = JSON.stringify(data.streams);
      if (listing !== shown) {
        shown = listing;
        set(tbody, ...data.streams.map((s) => el("tr", { "data-stream": s.name, class: "stream-row", "data-nav-key": "stream:" + s.name },
          el("td", {}, el("a", { href: "#/streams/" + encodeURIComponent(s.name), class: "mono" }, s.name)),
          el("td", {}, el("code", {}, s.contentType)),
          el("td", {}, badge(s.closed ? "completed" : "running").cloneNode(true), " ", s.closed ? "closed" : "open"),
          el("td", { class: "hide-narrow" }, fmtTime(s.createdAt)))));
        if (data.streams.length === 0) {
          set(tbody, el("tr", {}, el("td", { colspan: 4, class: "muted empty" },
            "No streams yet. Create one with ", el("code", {}, "runnel streams create NAME"), ".")));
        }
      }
    } catch (err) {
      if (!stopped) showError(msg, err);
    }
    if (!stopped) timer = setTimeout(load, 2000);
  }
  cleanup = () => { stopped = true; clearTimeout(timer); };
  load();
}

// streamPage follows one durable stream live with the protocol's long-poll:
// each answer carries the next offset, so nothing is read twice or missed,
// and a dropped connection resumes from the last offset.
function streamPage(name) {
  const info = el("p", { class: "muted" }, "Loading…");
  const out = el("div", { class: "output", id: "stream-output", "aria-live": "polite" });
  const state = el("span", { id: "stream-state" }, "following");
  set(app,
    el("p", { class: "crumbs" }, el("a", { href: "#/streams" }, "← Streams")),
    el("div", { class: "page-head" }, el("h1", { class: "mono" }, name), state),
    info, out);
  const ctl = new AbortController();
  cleanup = () => ctl.abort();
  const url = "/v1/stream/" + name.split("/").map(encodeURIComponent).join("/");
  const text = new TextDecoder();
  (async () => {
    let offset = "-1";
    let live = false;
    let contentType = "";
    while (!ctl.signal.aborted) {
      let resp;
      try {
        resp = await fetch(url + "?offset=" + encodeURIComponent(offset) + (live ? "&live=long-poll" : ""),
          { headers: { Authorization: "Bearer " + token() }, signal: ctl.signal, cache: "no-store" });
      } catch (err) {
        if (ctl.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 1000)); // the engine is away: try again
        continue;
      }
      if (resp.status === 404) {
        set(info, el("span", { class: "error" }, "No stream " + name + "."));
        set(state, "");
        return;
      }
      if (!resp.ok && resp.status !== 204) {
        set(info, el("span", { class: "error" }, resp.status + " " + (await resp.text())));
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      contentType = resp.headers.get("Content-Type") || contentType;
      set(info, el("code", {}, contentType));
      const body = new Uint8Array(await resp.arrayBuffer());
      if (body.length > 0) {
        if (contentType.startsWith("application/json")) {
          let items = [];
          try { items = JSON.parse(text.decode(body)); } catch { items = [text.decode(body)]; }
          for (const item of items) out.append(el("div", { class: "message" }, typeof item === "string" ? item : JSON.stringify(item)));
        } else if (contentType.startsWith("text/")) {
          out.append(text.decode(body));
        } else {
          out.append(el("div", { class: "muted" }, "<" + body.length + " bytes>"));
        }
      }
      offset = resp.headers.get("Stream-Next-Offset") || offset;
      const closed = resp.headers.get("Stream-Closed") === "true";
      const upToDate = resp.headers.get("Stream-Up-To-Date") === "true" || resp.status === 204;
      if (closed && upToDate) {
        set(state, badge("completed"), " closed");
        return;
      }
      live = upToDate;
    }
  })();
}
