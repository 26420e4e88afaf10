// Throughput over time, drawn as inline SVG from counts polled by the detail view:
// each pair of samples gives sent/s and failed/s over that interval.

import { fmt } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
const WINDOW_MS = 120_000;
const H = 200;
const PAD = { left: 48, right: 10, top: 12, bottom: 26 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Round up to 1, 2 or 5 times a power of ten, so axis labels read well. */
function niceMax(v) {
  if (v <= 0) return 10;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

export function throughputChart() {
  const samples = []; // {t, sent, failed}
  // The viewBox follows the element's real width, so text keeps its size at any width.
  const root = svg("svg", { role: "img", "aria-labelledby": "chart-title", height: H });
  const title = svg("title", { id: "chart-title" }, "Throughput: no data yet");
  const summary = document.createElement("p");
  summary.className = "muted small";
  summary.id = "chart-summary";

  function rates() {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      const dt = (b.t - a.t) / 1000;
      if (dt <= 0) continue;
      out.push({
        t: b.t,
        sent: Math.max(0, b.sent - a.sent) / dt,
        failed: Math.max(0, b.failed - a.failed) / dt,
      });
    }
    return out;
  }

  function draw() {
    const W = Math.round(root.getBoundingClientRect().width) || 640;
    root.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const now = samples.length ? samples[samples.length - 1].t : Date.now();
    const points = rates();
    const peak = Math.max(0, ...points.map((p) => p.sent + p.failed));
    const top = niceMax(peak);
    const iw = W - PAD.left - PAD.right;
    const ih = H - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + iw * (1 - (now - t) / WINDOW_MS);
    const y = (v) => PAD.top + ih * (1 - v / top);

    const nodes = [title];
    for (const f of [0, 0.5, 1]) {
      nodes.push(svg("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(top * f), y2: y(top * f) }));
      nodes.push(svg("text", { class: "axis-label", x: PAD.left - 6, y: y(top * f) + 4, "text-anchor": "end" }, fmt(top * f)));
    }
    for (const [label, ago, anchor] of [["2 min ago", WINDOW_MS, "start"], ["1 min ago", WINDOW_MS / 2, "middle"], ["now", 0, "end"]]) {
      nodes.push(svg("text", { class: "axis-label", x: x(now - ago), y: H - 6, "text-anchor": anchor }, label));
    }
    const line = (key) => points.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    if (points.length) {
      const first = x(points[0].t).toFixed(1);
      const last = x(points[points.length - 1].t).toFixed(1);
      nodes.push(svg("polygon", { class: "area-sent", points: `${first},${y(0)} ${line("sent")} ${last},${y(0)}` }));
      nodes.push(svg("polyline", { class: "line-sent", points: line("sent") }));
      nodes.push(svg("polyline", { class: "line-failed", points: line("failed") }));
    }
    if (!points.length || peak === 0) {
      const text = points.length ? "No messages processed recently" : "Collecting data…";
      nodes.push(svg("text", { class: "chart-empty", x: PAD.left + iw / 2, y: PAD.top + ih / 2, "text-anchor": "middle" }, text));
    }
    root.replaceChildren(...nodes);

    const current = points.length ? points[points.length - 1] : { sent: 0, failed: 0 };
    const text = `Now ${fmt(Math.round(current.sent))} sent/s and ${fmt(Math.round(current.failed))} failed/s · peak ${fmt(Math.round(peak))} messages/s over the last 2 minutes`;
    title.textContent = `Throughput: ${text}`;
    summary.textContent = text;
  }

  draw();
  new ResizeObserver(() => draw()).observe(root);
  return {
    svg: root,
    summary,
    /** Add the counts seen at time `t` (ms) and redraw. */
    push(t, sent, failed) {
      samples.push({ t, sent, failed });
      while (samples.length > 2 && samples[1].t < t - WINDOW_MS) samples.shift();
      draw();
    },
  };
}
