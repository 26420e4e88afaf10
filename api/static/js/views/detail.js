// One campaign: counts, throughput chart, messages (failed first) and the actions
// that apply in its current phase. Polls GET /campaigns/{id} every 1.5 s.

import { api, ApiError } from "../api.js";
import { throughputChart } from "../chart.js";
import {
  announce, badge, clock, dateTime, FINAL, fmt, h, message, PHASES, poll, progressBar,
} from "../ui.js";

const INTERVAL_MS = 1500;
const PAGE = 20;
const ACTIVE = new Set(["pending", "scheduled", "processing"]);

function stat(label, cls) {
  const dd = h("dd", {}, "–");
  return { el: h("div", { class: `stat ${cls}` }, h("dt", {}, label), dd), dd };
}

export function detailView(root, ctx, route) {
  const id = route.id;
  let current = null;
  let busy = null; // action in flight
  let awaiting = null; // {name, sig, until}: action sent, phase not yet changed
  let msgSig = null;

  // header and actions
  const title = h("h1", { id: "campaign-title" }, "Loading…");
  const phase = h("span", { id: "campaign-phase" });
  const sub = h("div", { class: "muted small" });
  const buttons = {
    retry: h("button", { type: "button", class: "btn btn-primary", id: "action-retry" }, "Retry failed"),
    suspend: h("button", { type: "button", class: "btn", id: "action-suspend" }, "Suspend"),
    resume: h("button", { type: "button", class: "btn", id: "action-resume" }, "Resume"),
    cancel: h("button", { type: "button", class: "btn btn-danger", id: "action-cancel" }, "Cancel campaign"),
  };
  for (const b of Object.values(buttons)) b.disabled = true;
  const status = h("div", { class: "alert alert-info", role: "status", id: "action-status" });
  const error = h("div", { class: "alert alert-error", role: "alert", id: "detail-error" });

  // counts
  const stats = {
    total: stat("Total", "stat-total"), sent: stat("Sent", "stat-sent"), failed: stat("Failed", "stat-failed"),
    pending: stat("Pending", "stat-pending"), queued: stat("Waiting to retry", "stat-queued"),
    cancelled: stat("Cancelled", "stat-cancelled"),
    suppressed: stat("Suppressed", "stat-suppressed"),
  };
  const bar = progressBar("Delivery progress", true);
  const pct = h("strong", {});
  const note = h("p", { class: "status-message", hidden: true, id: "status-message" });
  const quota = h("p", { class: "status-message", hidden: true, id: "quota-status" });
  const meta = h("dl", { class: "meta" });
  const live = h("span", { class: "live" }, "Loading…");
  const chart = throughputChart();

  // messages
  const filter = h("select", { id: "msg-filter" },
    [["failed", "Failed"], ["", "All"], ["sent", "Sent"], ["pending", "Pending"], ["cancelled", "Cancelled"],
     ["suppressed", "Suppressed"]]
      .map(([v, l]) => h("option", { value: v }, l)));
  const msgTitle = h("h2", { id: "messages-title" }, "Failed messages");
  const msgBody = h("tbody");
  const msgTable = h("table", { class: "table", id: "messages", "aria-labelledby": "messages-title" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", class: "num" }, "#"), h("th", { scope: "col" }, "Recipient"),
      h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "num" }, "Attempts"),
      h("th", { scope: "col" }, "Last error"), h("th", { scope: "col" }, "Updated"))),
    msgBody);
  const msgEmpty = h("p", { class: "empty", hidden: true, id: "messages-empty" });
  const pageInfo = h("span", {});
  const prev = h("button", { type: "button", class: "btn", disabled: true }, "Previous page");
  const next = h("button", { type: "button", class: "btn", disabled: true }, "Next page");
  const cursors = [-1]; // `after` of each page seen; the last is the current page
  let nextAfter = null;

  root.append(
    h("a", { class: "back", href: "#/" }, "← All campaigns"),
    h("div", { class: "detail-head" },
      h("div", {}, h("div", { class: "title" }, title, phase), sub),
      h("div", { class: "actions", role: "group", "aria-label": "Campaign actions" }, Object.values(buttons))),
    status, error,
    h("dl", { class: "stats", id: "stats", "aria-label": "Messages by status" }, Object.values(stats).map((s) => s.el)),
    h("section", { class: "card", "aria-labelledby": "progress-title" },
      h("div", { class: "card-head" }, h("h2", { id: "progress-title" }, "Progress"), h("div", {}, pct, " ", live)),
      bar,
      h("div", { class: "legend-row" },
        h("span", {}, h("span", { class: "dot dot-sent" }), "Sent"),
        h("span", {}, h("span", { class: "dot dot-failed" }), "Failed"),
        h("span", {}, h("span", { class: "dot dot-pending" }), "Pending or cancelled")),
      note, quota, meta),
    h("section", { class: "card chart", "aria-labelledby": "chart-heading" },
      h("div", { class: "card-head" }, h("h2", { id: "chart-heading" }, "Throughput (messages/s)"),
        h("div", { class: "legend-row" },
          h("span", {}, h("span", { class: "dot dot-sent" }), "Sent"),
          h("span", {}, h("span", { class: "dot dot-failed" }), "Failed"))),
      chart.svg, chart.summary),
    h("section", { class: "card", "aria-labelledby": "messages-title" },
      h("div", { class: "card-head" }, msgTitle,
        h("div", { class: "field" }, h("label", { for: "msg-filter", class: "visually-hidden" }, "Show messages"), filter)),
      msgTable, msgEmpty,
      h("nav", { class: "pager", "aria-label": "Message pages" }, pageInfo, h("div", { class: "btns" }, prev, next))),
  );

  const signature = (c) => `${c.status}|${c.progress.pending}|${c.progress.queued}|${c.progress.sent}|${c.progress.failed}|${c.progress.cancelled}|${c.progress.suppressed}`;

  function syncButtons() {
    const c = current;
    const waiting = (name) => awaiting && awaiting.name === name && awaiting.sig === signature(c) && Date.now() < awaiting.until;
    const off = (name, cond) => { buttons[name].disabled = Boolean(busy) || waiting(name) || !cond; };
    off("retry", c.progress.failed > 0 && c.status !== "cancelled");
    off("suspend", ACTIVE.has(c.status));
    off("resume", c.status === "suspended");
    off("cancel", !FINAL.has(c.status));
  }

  function show(c) {
    const before = current;
    current = c;
    title.textContent = c.name;
    if (!before || before.status !== c.status) {
      phase.replaceChildren(badge(c.status));
      if (before) announce(`Campaign ${c.name} is now ${PHASES[c.status] || c.status}`);
    }
    sub.replaceChildren(h("span", { class: "mono" }, c.resourceName), ` · created ${dateTime(c.createdAt)}`);
    const p = c.progress;
    const total = Math.max(c.totalMessages, p.pending + p.queued + p.sent + p.failed + p.cancelled + (p.suppressed || 0));
    stats.total.dd.textContent = fmt(total);
    stats.sent.dd.textContent = fmt(p.sent);
    stats.failed.dd.textContent = fmt(p.failed);
    stats.pending.dd.textContent = fmt(p.pending);
    stats.queued.dd.textContent = fmt(p.queued);
    stats.cancelled.dd.textContent = fmt(p.cancelled);
    stats.suppressed.dd.textContent = fmt(p.suppressed || 0);
    pct.textContent = `${bar.update(total, p.sent, p.failed).done}% processed`;
    note.hidden = !c.message;
    note.replaceChildren(h("span", { class: "muted" }, "Status: "), c.message || "");
    const q = c.quota;
    quota.hidden = !q;
    if (q) {
      quota.replaceChildren(h("span", { class: "muted" }, q.waiting ? "Waiting for quota: " : "Quota: "),
        `provider ${q.provider} at ${fmt(q.providerRate)}/s, this campaign's share ${fmt(q.share)}/s`,
        q.waiting && q.reason ? ` (${q.reason})` : "");
    }
    meta.replaceChildren(
      h("dt", {}, "Campaign ID"), h("dd", { class: "mono" }, c.id),
      h("dt", {}, "Last change"), h("dd", {}, dateTime(c.updatedAt)),
    );
    chart.push(Date.now(), p.sent, p.failed);
    syncButtons();
    document.title = `${c.name} · notifq`;
  }

  async function loadMessages() {
    const statusFilter = filter.value;
    try {
      const page = await api.messages(id, { status: statusFilter || undefined, after: cursors[cursors.length - 1], limit: PAGE });
      nextAfter = page.nextAfter;
      msgBody.replaceChildren(...page.items.map((m) => h("tr", {},
        h("td", { class: "num", "data-label": "#" }, String(m.seq)),
        h("td", { "data-label": "Recipient", class: "mono" }, m.recipient),
        h("td", { "data-label": "Status" }, m.status),
        h("td", { class: "num", "data-label": "Attempts" }, String(m.attempts)),
        h("td", { class: "error-cell", "data-label": "Last error" }, m.lastError || "—"),
        h("td", { "data-label": "Updated" }, dateTime(m.updatedAt)),
      )));
      msgTable.hidden = page.items.length === 0;
      msgEmpty.hidden = page.items.length > 0;
      msgEmpty.textContent = cursors.length > 1 ? "No more messages." : `No ${statusFilter || ""} messages.`.replace("  ", " ");
      const first = (cursors.length - 1) * PAGE;
      pageInfo.textContent = page.items.length ? `Page ${cursors.length} · messages ${fmt(first + 1)}–${fmt(first + page.items.length)}` : "";
      prev.disabled = cursors.length === 1;
      next.disabled = nextAfter === null;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // back to sign-in
      error.textContent = `Could not load messages: ${message(err)}`;
    }
  }

  async function refresh() {
    let c;
    try {
      c = await api.campaign(id);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        poller.stop();
        root.replaceChildren(h("section", { class: "card empty" },
          h("h1", {}, "Campaign not found"),
          h("p", {}, "It may have been deleted."), h("a", { class: "btn", href: "#/" }, "All campaigns")));
        return;
      }
      live.classList.add("stale");
      error.textContent = `Could not refresh: ${message(err)}. Retrying…`;
      return;
    }
    error.textContent = "";
    live.classList.remove("stale");
    live.textContent = `· live, updated ${clock()}`;
    show(c);
    const sig = `${filter.value}|${cursors.length}|${signature(c)}`;
    if (sig !== msgSig) {
      msgSig = sig;
      await loadMessages();
    }
  }

  async function act(name, done, confirmText) {
    if (confirmText && !window.confirm(confirmText)) return;
    busy = name;
    syncButtons();
    status.textContent = "";
    error.textContent = "";
    try {
      const res = await api.action(id, name);
      awaiting = { name, sig: signature(current), until: Date.now() + 15_000 };
      status.textContent = done(res);
      announce(status.textContent);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      error.textContent = `${buttons[name].textContent} did not work: ${message(err)}`;
    } finally {
      busy = null;
      if (current) syncButtons();
      poller.kick();
    }
  }

  buttons.retry.addEventListener("click", () =>
    act("retry", (r) => `Retrying ${fmt(r.retriedCount)} failed message${r.retriedCount === 1 ? "" : "s"}.`));
  buttons.suspend.addEventListener("click", () => act("suspend", () => "Suspending delivery…"));
  buttons.resume.addEventListener("click", () => act("resume", () => "Resuming delivery…"));
  buttons.cancel.addEventListener("click", () =>
    act("cancel", () => "Cancelling: messages not sent yet will not be sent.",
      "Cancel this campaign? Messages not sent yet will never be sent. This cannot be undone."));

  const resetPages = () => { cursors.splice(1); msgSig = null; poller.kick(); };
  filter.addEventListener("change", () => {
    msgTitle.textContent = filter.value ? `${filter.options[filter.selectedIndex].text} messages` : "All messages";
    resetPages();
  });
  next.addEventListener("click", () => { if (nextAfter !== null) { cursors.push(nextAfter); msgSig = null; poller.kick(); } });
  prev.addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); msgSig = null; poller.kick(); } });

  const poller = poll(refresh, INTERVAL_MS);
  return () => poller.stop();
}
