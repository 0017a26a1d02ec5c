/**
 * The plots of a bench run, as SVG: latency over time (p50, p99 and max per
 * interval, log scale) and the percentile distribution (HdrHistogram's
 * classic plot: the x axis stretches the tail, 90%, 99%, 99.9%…). `--svg`
 * writes both in one file; `--html` a page with both and the summary.
 * @module
 */
import { Latency } from "./histogram.js";
import { formatUs, stepsTable, summary, type BenchFile } from "./report.js";

const W = 760;
const H = 300;
const M = { l: 70, r: 40, t: 30, b: 40 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Log-scale y axis over [lo, hi] µs: a mapping and its ticks (1-2-5 steps). */
function logAxis(lo: number, hi: number): { y: (us: number) => number; ticks: number[] } {
  const a = Math.log10(Math.max(1, lo));
  const b = Math.max(a + 1, Math.log10(Math.max(1, hi)));
  const y = (us: number): number => M.t + (H - M.t - M.b) * (1 - (Math.log10(Math.max(1, us)) - a) / (b - a));
  const ticks: number[] = [];
  for (let e = Math.floor(a); e <= Math.ceil(b); e++) for (const m of [1, 2, 5]) {
    const v = m * 10 ** e;
    if (Math.log10(v) >= a - 1e-9 && Math.log10(v) <= b + 1e-9) ticks.push(v);
  }
  return { y, ticks };
}

function frame(title: string, yTicks: number[], y: (v: number) => number, xTicks: Array<[number, string]>, x: (v: number) => number, xLabel: string, body: string, legend: string[], dy: number): string {
  const parts: string[] = [`<g transform="translate(0,${dy})">`];
  parts.push(`<text x="${M.l}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`);
  for (const t of yTicks) {
    const yy = y(t).toFixed(1);
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${yy}" y2="${yy}" stroke="#ddd"/><text x="${M.l - 6}" y="${yy}" font-size="11" text-anchor="end" dominant-baseline="middle">${esc(formatUs(t))}</text>`);
  }
  for (const [v, label] of xTicks) {
    const xx = x(v).toFixed(1);
    parts.push(`<line x1="${xx}" x2="${xx}" y1="${M.t}" y2="${H - M.b}" stroke="#eee"/><text x="${xx}" y="${H - M.b + 16}" font-size="11" text-anchor="middle">${esc(label)}</text>`);
  }
  parts.push(`<text x="${(M.l + W - M.r) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(`<rect x="${M.l}" y="${M.t}" width="${W - M.l - M.r}" height="${H - M.t - M.b}" fill="none" stroke="#888"/>`);
  parts.push(body);
  legend.forEach((l, i) => parts.push(`<text x="${W - M.r - 8}" y="${M.t + 16 + i * 14}" font-size="11" text-anchor="end" fill="${COLORS[i % COLORS.length]}">${esc(l)}</text>`));
  parts.push("</g>");
  return parts.join("\n");
}

const path = (pts: Array<[number, number]>, color: string, dash = ""): string =>
  pts.length === 0 ? "" : `<polyline fill="none" stroke="${color}" stroke-width="1.6"${dash ? ` stroke-dasharray="${dash}"` : ""} points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ")}"/>`;

/** Latency over time: p50, p99 and max per interval; rate steps follow one another. */
export function timePlot(f: BenchFile, dy = 0): string {
  const pts: { t: number; p50: number; p99: number; max: number }[] = [];
  const bounds: number[] = [];
  let offset = 0;
  for (const r of f.runs) {
    // A short last interval (the drain after the end) would plot a few calls as a whole second's figures.
    const lens = r.timeline.map((p) => p.ms).sort((a, b) => a - b);
    const typical = lens.length ? lens[lens.length >> 1]! : 0;
    for (const p of r.timeline) if (p.calls > 0 && p.ms >= typical / 2) pts.push({ t: offset + p.t, p50: p.p50, p99: p.p99, max: p.max });
    offset += r.windowMs / 1000;
    bounds.push(offset);
  }
  const all = pts.flatMap((p) => [p.p50, p.max]);
  const { y, ticks } = logAxis(all.length ? Math.min(...all) : 1, all.length ? Math.max(...all) : 1000);
  const tMax = Math.max(offset, 1);
  const x = (t: number): number => M.l + (W - M.l - M.r) * (t / tMax);
  const step = tMax <= 20 ? 1 : tMax <= 120 ? 10 : 60;
  const xTicks: Array<[number, string]> = [];
  for (let t = 0; t <= tMax + 1e-9; t += step) xTicks.push([t, `${t}s`]);
  const body = [
    path(pts.map((p) => [x(p.t), y(p.p50)]), COLORS[0]!),
    path(pts.map((p) => [x(p.t), y(p.p99)]), COLORS[1]!),
    path(pts.map((p) => [x(p.t), y(p.max)]), COLORS[2]!, "4 3"),
    ...(f.runs.length > 1 ? bounds.slice(0, -1).map((b) => `<line x1="${x(b).toFixed(1)}" x2="${x(b).toFixed(1)}" y1="${M.t}" y2="${H - M.b}" stroke="#999" stroke-dasharray="2 2"/>`) : []),
  ].join("\n");
  return frame("latency over time", ticks, y, xTicks, x, "time since measuring began (each interval: its calls)", body, ["p50", "p99", "max"], dy);
}

/** HdrHistogram's percentile plot: x = log10(1 / (1 − p)), so each further nine gets the same width. */
export function percentilePlot(f: BenchFile, dy = 0): string {
  const curves = f.runs.map((r) => {
    const l = Latency.decode(r.latency.histogram);
    const pts: Array<[number, number]> = [];
    for (let k = 0; k <= 50; k++) {
      const nines = (5 * k) / 50; // up to 99.999%
      const p = 100 * (1 - 10 ** -nines);
      pts.push([nines, l.at(p)]);
    }
    return { label: r.mode === "open" ? `${r.rate}/s` : `${r.connections}×${r.inFlight}`, pts, max: l.at(100) };
  });
  const vals = curves.flatMap((c) => c.pts.map(([, v]) => v)).filter((v) => v > 0);
  const { y, ticks } = logAxis(vals.length ? Math.min(...vals) : 1, vals.length ? Math.max(...vals) : 1000);
  const x = (n: number): number => M.l + (W - M.l - M.r) * (n / 5);
  const xTicks: Array<[number, string]> = [[0, "0%"], [1, "90%"], [2, "99%"], [3, "99.9%"], [4, "99.99%"], [5, "99.999%"]];
  const body = curves.map((c, i) => path(c.pts.map(([n, v]) => [x(n), y(v)]), COLORS[i % COLORS.length]!)).join("\n");
  return frame("latency by percentile", ticks, y, xTicks, x, "percentile", body, curves.length > 1 ? curves.map((c) => c.label) : ["latency"], dy);
}

/** Both plots in one SVG. */
export function svgPlots(f: BenchFile): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H + 10}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${timePlot(f)}\n${percentilePlot(f, H + 10)}\n</svg>\n`;
}

/** A page with the summary and both plots. */
export function htmlPage(f: BenchFile): string {
  const text = f.runs.map(summary).join("\n") + (f.runs.length > 1 ? `\n${stepsTable(f.runs)}` : "");
  const svg = (inner: string): string => `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">${inner}</svg>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tilth bench ${esc(f.runs[0]?.url ?? "")} ${esc(f.runs[0]?.method ?? "")}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em}pre{background:#f6f6f6;padding:1em;overflow-x:auto}</style></head>
<body>
<h1>tilth bench</h1>
<p>${esc(f.date)}</p>
<pre>${esc(text)}</pre>
${svg(timePlot(f))}
${svg(percentilePlot(f))}
</body></html>
`;
}
