/**
 * Horizontal bar charts as hand-written SVG: one bar per system (the median),
 * a whisker from the slowest to the fastest run, the value at the end.
 */
import { formatRate } from "./lib.js";

export interface Bar {
  label: string;
  value: number;
  min: number;
  max: number;
  /** `base` (raw ceilings), `tilth`, `peer`: the bar's colour. */
  kind: string;
  /** Not applicable: drawn as a note instead of a bar. */
  na?: string | undefined;
  /** Client and server in one process: drawn below a separator. */
  inProcess?: boolean;
}

export interface ChartSpec {
  title: string;
  subtitle: string;
  unit: string;
  bars: Bar[];
}

const COLORS: Record<string, string> = { base: "#8d949c", tilth: "#2e7d32", peer: "#2b6cb0" };

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A round step (1, 2 or 5 times a power of ten) giving about `n` ticks up to `max`. */
function niceStep(max: number, n: number): number {
  const raw = max / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

export function barChart(spec: ChartSpec): string {
  const labelW = 270;
  const plotW = 520;
  const valueW = 110;
  const rowH = 26;
  const top = 64;
  const width = labelW + plotW + valueW;
  const height = top + spec.bars.length * rowH + 40;
  const finite = (x: number): boolean => Number.isFinite(x) && x > 0;
  const hi = Math.max(1, ...spec.bars.filter((b) => !b.na).flatMap((b) => [b.value, b.max].filter(finite)));
  const step = niceStep(hi, 5);
  const axisMax = Math.ceil(hi / step) * step;
  const x = (v: number): number => labelW + (Math.max(0, v) / axisMax) * plotW;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="600" fill="#1a1a1a">${esc(spec.title)}</text>`,
    `<text x="12" y="41" font-size="11" fill="#555">${esc(spec.subtitle)}</text>`,
  );
  const bottom = top + spec.bars.length * rowH;
  for (let t = 0; t <= axisMax + step / 2; t += step) {
    const gx = x(t).toFixed(1);
    out.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${bottom}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${gx}" y="${bottom + 16}" text-anchor="middle" fill="#555">${t === 0 ? "0" : esc(formatRate(t))}</text>`);
  }
  out.push(`<text x="${labelW + plotW / 2}" y="${bottom + 32}" text-anchor="middle" fill="#555">${esc(spec.unit)}</text>`);
  spec.bars.forEach((b, i) => {
    const y = top + i * rowH;
    const cy = y + rowH / 2;
    if (b.inProcess && !spec.bars[i - 1]?.inProcess && i > 0) {
      out.push(`<line x1="12" y1="${y}" x2="${labelW + plotW}" y2="${y}" stroke="#999" stroke-dasharray="4 3"/>`);
      out.push(`<text x="${labelW + plotW}" y="${y - 3}" text-anchor="end" font-size="10" fill="#777">below: client and server in one process</text>`);
    }
    out.push(`<text x="${labelW - 8}" y="${cy + 4}" text-anchor="end" fill="#1a1a1a"${b.kind === "tilth" ? ' font-weight="600"' : ""}>${esc(b.label)}</text>`);
    if (b.na) {
      out.push(`<text x="${labelW + 4}" y="${cy + 4}" fill="#888" font-style="italic">n/a: ${esc(b.na)}</text>`);
      return;
    }
    const w = Math.max(1, x(b.value) - labelW);
    out.push(`<rect x="${labelW}" y="${y + 5}" width="${w.toFixed(1)}" height="${rowH - 10}" fill="${COLORS[b.kind] ?? COLORS.peer}"/>`);
    let end = x(b.value);
    if (finite(b.min) && finite(b.max) && b.max > b.min) {
      const x1 = x(b.min).toFixed(1);
      const x2 = x(b.max).toFixed(1);
      out.push(
        `<line x1="${x1}" y1="${cy}" x2="${x2}" y2="${cy}" stroke="#1a1a1a" stroke-width="1.2"/>`,
        `<line x1="${x1}" y1="${cy - 5}" x2="${x1}" y2="${cy + 5}" stroke="#1a1a1a" stroke-width="1.2"/>`,
        `<line x1="${x2}" y1="${cy - 5}" x2="${x2}" y2="${cy + 5}" stroke="#1a1a1a" stroke-width="1.2"/>`,
      );
      end = Math.max(end, x(b.max));
    }
    out.push(`<text x="${(end + 6).toFixed(1)}" y="${cy + 4}" fill="#1a1a1a">${esc(formatRate(b.value))}</text>`);
  });
  out.push("</svg>", "");
  return out.join("\n");
}
