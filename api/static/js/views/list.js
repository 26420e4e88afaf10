// Campaign list: phase, progress bar, totals and age, polled every 1.5 s.

import { api, place } from "../api.js";
import { age, announce, badge, clock, fmt, h, message, PHASES, poll, progressBar } from "../ui.js";

const PAGE = 20;
const INTERVAL_MS = 1500;

function row(c) {
  const link = h("a", { href: `#/campaigns/${c.id}` });
  const resource = h("span", { class: "mono" });
  const phase = h("td", { "data-label": "Phase", class: "phase-cell" });
  const bar = progressBar(`Progress of ${c.name}`);
  const pct = h("span", { class: "pct" });
  const counts = h("span", { class: "counts" });
  const sent = h("td", { class: "num", "data-label": "Sent" });
  const failed = h("td", { class: "num", "data-label": "Failed" });
  const total = h("td", { class: "num", "data-label": "Total" });
  const ageCell = h("td", { class: "num", "data-label": "Age" });
  const tr = h("tr", { dataset: { id: c.id } },
    h("td", { class: "name-cell", "data-label": "Name" }, link, resource),
    phase,
    h("td", { class: "progress-td", "data-label": "Progress" },
      h("div", { class: "progress-cell" }, bar, h("div", { class: "progress-text" }, counts, pct))),
    sent, failed, total, ageCell,
  );
  tr.update = (c) => {
    link.textContent = c.name;
    resource.textContent = c.resourceName;
    if (phase.dataset.status !== c.status) {
      phase.dataset.status = c.status;
      phase.replaceChildren(badge(c.status));
    }
    const p = bar.update(c.totalMessages, c.sentCount, c.failedCount);
    pct.textContent = `${p.done}%`;
    const pending = Math.max(0, c.totalMessages - c.sentCount - c.failedCount);
    counts.textContent = pending ? `${fmt(pending)} not sent yet` : "all processed";
    sent.textContent = fmt(c.sentCount);
    failed.textContent = fmt(c.failedCount);
    total.textContent = fmt(c.totalMessages);
    ageCell.textContent = age(c.createdAt);
    ageCell.title = new Date(c.createdAt).toLocaleString();
  };
  tr.update(c);
  return tr;
}

export function listView(root, ctx) {
  let offset = 0;
  const rows = new Map();
  const phases = new Map(); // id -> last status, to announce changes
  const live = h("span", { class: "live", id: "list-updated" }, "Loading…");
  const flash = ctx.notice
    ? h("div", { class: `alert alert-${ctx.notice.kind}`, role: "status" }, ctx.notice.text)
    : null;
  const error = h("div", { class: "alert alert-error", role: "alert" });
  const tbody = h("tbody");
  const table = h("table", { class: "table", id: "campaigns" },
    h("caption", { class: "visually-hidden" }, "Campaigns, newest first"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Phase"),
      h("th", { scope: "col" }, "Progress"), h("th", { scope: "col", class: "num" }, "Sent"),
      h("th", { scope: "col", class: "num" }, "Failed"), h("th", { scope: "col", class: "num" }, "Total"),
      h("th", { scope: "col", class: "num" }, "Age"))),
    tbody);
  const empty = h("div", { class: "empty", hidden: true },
    h("p", {}, "No campaigns yet."),
    h("a", { class: "btn btn-primary", href: "#/new" }, "Create your first campaign"));
  const range = h("span", {});
  const prev = h("button", { type: "button", class: "btn", disabled: true }, "Previous");
  const next = h("button", { type: "button", class: "btn", disabled: true }, "Next");
  const pager = h("nav", { class: "pager", "aria-label": "Campaign pages", hidden: true },
    range, h("div", { class: "btns" }, prev, next));

  root.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Campaigns"), h("div", { class: "sub" }, live)),
      h("a", { class: "btn btn-primary", href: "#/new" }, "New campaign")),
    flash, error,
    h("section", { class: "card", "aria-label": "Campaign list" }, table, empty, pager),
  );

  async function refresh() {
    let page;
    try {
      page = await api.campaigns(PAGE, offset, place.get());
    } catch (err) {
      error.textContent = `Could not load campaigns: ${message(err)}. Retrying…`;
      live.classList.add("stale");
      return;
    }
    error.textContent = "";
    live.classList.remove("stale");
    live.textContent = `Live · updated ${clock()}`;
    if (!page.items.length && offset > 0) {
      offset = Math.max(0, offset - PAGE);
      return refresh();
    }
    const seen = new Set();
    page.items.forEach((c, i) => {
      seen.add(c.id);
      let tr = rows.get(c.id);
      if (tr) tr.update(c);
      else {
        tr = row(c);
        rows.set(c.id, tr);
        if (ctx.notice && ctx.notice.id === c.id) tr.classList.add("flash");
      }
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
      const before = phases.get(c.id);
      if (before && before !== c.status) announce(`${c.name}: ${PHASES[c.status] || c.status}`);
      phases.set(c.id, c.status);
    });
    for (const [id, tr] of rows) {
      if (!seen.has(id)) {
        tr.remove();
        rows.delete(id);
      }
    }
    table.hidden = page.items.length === 0;
    empty.hidden = page.total > 0;
    pager.hidden = page.total <= PAGE;
    range.textContent = `${fmt(offset + 1)}–${fmt(offset + page.items.length)} of ${fmt(page.total)}`;
    prev.disabled = offset === 0;
    next.disabled = offset + PAGE >= page.total;
  }

  const poller = poll(refresh, INTERVAL_MS);
  prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); poller.kick(); });
  next.addEventListener("click", () => { offset += PAGE; poller.kick(); });
  return () => poller.stop();
}
