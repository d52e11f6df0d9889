// Keyboard navigation: j/k move through the rows of the page (runs,
// workers, streams, timeline rows), Enter opens the selected one, g then a
// letter goes to a page, ? shows the list. Rows opt in with data-nav-key;
// the key (not the element) is remembered, so the selection survives the
// pages re-rendering their rows every second.

import { el } from "./lib.js";

export const SHORTCUTS = [
  ["j / k", "next / previous row"],
  ["Enter", "open the selected row"],
  ["→ / ←", "runs tree: unfold / fold the selected run"],
  ["t", "runs: switch between list and tree"],
  ["/", "runs: focus the filters"],
  ["g r", "go to runs"],
  ["g w", "go to workers"],
  ["g m", "go to metrics"],
  ["g s", "go to streams"],
  ["g t", "go to trigger"],
  ["?", "show this help"],
  ["Esc", "close this help"],
];

const GO = { r: "#/runs", w: "#/workers", m: "#/metrics", s: "#/streams", t: "#/trigger" };

let selected = ""; // data-nav-key of the selected row
let pendingG = 0; // time of a "g" waiting for its second key

const rows = () => [...document.querySelectorAll("#app [data-nav-key]")].filter((r) => r.offsetParent !== null);

// mark shows the selection on the row that has the selected key, if any.
function mark() {
  for (const r of document.querySelectorAll("#app .kb-sel")) if (r.dataset.navKey !== selected) r.classList.remove("kb-sel");
  const row = selected && rows().find((r) => r.dataset.navKey === selected);
  if (row) row.classList.add("kb-sel");
}

function move(by) {
  const list = rows();
  if (!list.length) return;
  const at = list.findIndex((r) => r.dataset.navKey === selected);
  const next = list[at < 0 ? (by > 0 ? 0 : list.length - 1) : Math.min(Math.max(at + by, 0), list.length - 1)];
  selected = next.dataset.navKey;
  mark();
  next.scrollIntoView({ block: "nearest" });
}

function selectedRow() {
  return selected ? rows().find((r) => r.dataset.navKey === selected) : null;
}

function helpDialog() {
  let dlg = document.getElementById("help");
  if (!dlg) {
    dlg = el("dialog", { id: "help", "aria-label": "Keyboard shortcuts" },
      el("h2", {}, "Keyboard shortcuts"),
      el("dl", { class: "keys" }, SHORTCUTS.map(([k, what]) => [el("dt", {}, el("kbd", {}, k)), el("dd", {}, what)])),
      el("form", { method: "dialog" }, el("button", { type: "submit" }, "Close")));
    document.body.append(dlg);
  }
  return dlg;
}

const typing = (t) => t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
  const help = document.getElementById("help");
  if (help && help.open) return; // the dialog handles Esc itself
  if (pendingG && Date.now() - pendingG < 1500) {
    pendingG = 0;
    if (GO[e.key]) { e.preventDefault(); location.hash = GO[e.key]; }
    return;
  }
  const row = selectedRow();
  switch (e.key) {
    case "g": pendingG = Date.now(); return;
    case "j": move(1); break;
    case "k": move(-1); break;
    case "?": helpDialog().showModal(); break;
    case "Enter": {
      if (!row || e.target.closest?.("a, button")) return; // a focused link opens itself
      const target = row.querySelector("a[href], button.tl-name");
      if (target) target.click();
      break;
    }
    case "ArrowRight":
    case "ArrowLeft": {
      const twisty = row && row.querySelector(".twisty");
      if (!twisty) return;
      if ((e.key === "ArrowRight") !== (twisty.getAttribute("aria-expanded") === "true")) twisty.click();
      break;
    }
    case "t": {
      const toggle = document.getElementById("view-toggle");
      if (!toggle) return;
      toggle.click();
      break;
    }
    case "/": {
      const filter = document.querySelector("#app .filters input");
      if (!filter) return;
      filter.focus();
      break;
    }
    default:
      return;
  }
  e.preventDefault();
}

// installKeys starts the keyboard handling, once per page load.
export function installKeys() {
  document.addEventListener("keydown", onKey);
  // Rows are replaced when pages refresh: put the mark back on the new one.
  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; mark(); });
  }).observe(document.getElementById("app"), { childList: true, subtree: true });
}

// resetSelection forgets the selection when the page changes.
export function resetSelection() { selected = ""; }
