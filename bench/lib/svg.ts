// A line chart as a standalone SVG: one polyline per series, axes with a few ticks, a legend.

export interface Line {
  label: string;
  points: readonly (readonly [number, number])[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
const W = 720;
const H = 360;
const M = { left: 60, right: 170, top: 30, bottom: 45 };

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Round tick steps (1, 2, 5 × 10^k) giving about `count` ticks up to `max`. */
export function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw) as number;
  const out: number[] = [];
  for (let v = 0; ; v += step) {
    out.push(Number(v.toPrecision(12)));
    if (v >= max * 0.9999) return out;
  }
}

export function lineChart(title: string, xLabel: string, yLabel: string, lines: readonly Line[]): string {
  const all = lines.flatMap((l) => l.points);
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yMax = Math.max(1, ...all.map((p) => p[1]));
  const xt = ticks(xMax);
  const yt = ticks(yMax);
  const xTop = xt[xt.length - 1] as number;
  const yTop = yt[yt.length - 1] as number;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (x: number): string => (M.left + (x / xTop) * pw).toFixed(1);
  const sy = (y: number): string => (M.top + ph - (y / yTop) * ph).toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - M.right / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`,
  ];
  for (const v of xt) {
    out.push(
      `<line x1="${sx(v)}" y1="${M.top}" x2="${sx(v)}" y2="${M.top + ph}" stroke="#eee"/>`,
      `<text x="${sx(v)}" y="${M.top + ph + 15}" text-anchor="middle">${v}</text>`,
    );
  }
  for (const v of yt) {
    out.push(
      `<line x1="${M.left}" y1="${sy(v)}" x2="${M.left + pw}" y2="${sy(v)}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${sy(v)}" text-anchor="end" dominant-baseline="middle">${v}</text>`,
    );
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  lines.forEach((l, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = l.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(' ');
    const ly = M.top + 10 + i * 16;
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"/>`,
      `<line x1="${W - M.right + 10}" y1="${ly}" x2="${W - M.right + 28}" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${W - M.right + 32}" y="${ly}" dominant-baseline="middle">${esc(l.label)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
