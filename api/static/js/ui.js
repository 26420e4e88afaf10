// Small DOM and formatting helpers shared by the views.

/** Create an element: h("a", {href: "#/", class: "x"}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const numberFormat = new Intl.NumberFormat("en-US");
export const fmt = (n) => numberFormat.format(n || 0);

export const PHASES = {
  pending: "Pending",
  scheduled: "Scheduled",
  processing: "Processing",
  suspended: "Suspended",
  completed: "Completed",
  completed_with_failures: "Completed with failures",
  cancelled: "Cancelled",
  failed: "Failed",
};
export const FINAL = new Set(["completed", "completed_with_failures", "cancelled", "failed"]);

export function badge(status) {
  return h("span", { class: `badge badge-${status}`, "data-status": status }, PHASES[status] || status);
}

/** Age as kubectl prints it: 12s, 5m, 3h, 2d. */
export function age(iso) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export const dateTime = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
export const clock = () => new Date().toLocaleTimeString();

/** Percentages of a campaign's bar: [sent, failed] of total, and done (sent + failed). */
export function shares(total, sent, failed) {
  if (!total) return { sent: 0, failed: 0, done: 0 };
  const pct = (n) => Math.min(100, (100 * n) / total);
  return { sent: pct(sent), failed: pct(failed), done: Math.floor(pct(sent + failed)) };
}

/** A progress bar (sent | failed | rest), updated in place with `update(total, sent, failed)`. */
export function progressBar(label, large = false) {
  const sent = h("span", { class: "seg-sent" });
  const failed = h("span", { class: "seg-failed" });
  const el = h("div", {
    class: large ? "bar bar-lg" : "bar",
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": 0,
    "aria-valuemax": 100,
    "aria-valuenow": 0,
  }, sent, failed);
  el.update = (total, s, f) => {
    const p = shares(total, s, f);
    sent.style.width = `${p.sent}%`;
    failed.style.width = `${p.failed}%`;
    el.setAttribute("aria-valuenow", String(p.done));
    el.setAttribute("aria-valuetext", `${p.done}% done: ${fmt(s)} sent, ${fmt(f)} failed of ${fmt(total)}`);
    return p;
  };
  return el;
}

/** Say something to screen readers (the page's aria-live region). */
export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}

/**
 * Call `fn` now and then every `ms` after each call settles, until `stop()`;
 * skipped while the tab is hidden. `kick()` runs it again at once.
 */
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false; // kicked while running: run once more right after
  const run = async () => {
    clearTimeout(timer);
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    if (document.hidden) {
      timer = setTimeout(run, ms);
      return;
    }
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      if (!stopped) timer = setTimeout(run, again ? 0 : ms);
      again = false;
    }
  };
  run();
  return {
    kick: run,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The text of an error for a person, capitalised. */
export function message(err) {
  const text = (err && err.message) || String(err);
  return text.charAt(0).toUpperCase() + text.slice(1);
}
