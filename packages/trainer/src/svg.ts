/** One line of a chart: a label and its (x, y) points. */
export interface Series {
  label: string;
  points: readonly (readonly [number, number])[];
}

export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Tick labels as percentages (values 0…1 shown as 0…100). */
  percent?: boolean;
  /** Index of a series drawn thicker (the selected configuration). */
  highlight?: number;
}

// matplotlib's tab10, so the plot looks like the ones people make in Python.
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A step of 1, 2 or 5 × 10^k giving about `count` intervals over `span`. */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

function num(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** A self-contained SVG line chart (axes, grid, one polyline with markers per series, legend); no dependencies. */
export function lineChartSvg(series: readonly Series[], opts: LineChartOptions = {}): string {
  const width = opts.width ?? 760;
  const height = opts.height ?? 420;
  const left = 64;
  const right = 230;
  const top = opts.title ? 40 : 20;
  const bottom = 52;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const pts = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xs = pts.map(([x]) => x);
  const ys = pts.map(([, y]) => y);
  const xMin = Math.min(0, ...xs);
  const xMax = Math.max(xMin + 1, ...xs);
  let yLo = ys.length ? Math.min(...ys) : 0;
  let yHi = ys.length ? Math.max(...ys) : 1;
  if (yHi - yLo < 1e-9) {
    yLo -= 0.05;
    yHi += 0.05;
  }
  const yStep = niceStep(yHi - yLo, 5);
  yLo = Math.floor(yLo / yStep) * yStep;
  yHi = Math.ceil(yHi / yStep) * yStep;
  const xStep = Math.max(1, Math.ceil((xMax - xMin) / 10));
  const px = (x: number) => left + ((x - xMin) / (xMax - xMin)) * plotW;
  const py = (y: number) => top + (1 - (y - yLo) / (yHi - yLo)) * plotH;
  const yText = (y: number) =>
    opts.percent
      ? (y * 100).toFixed(yStep * 100 < 1 ? 2 : yStep * 100 < 10 ? 1 : 0)
      : y.toFixed(Math.max(0, -Math.floor(Math.log10(yStep))));

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  if (opts.title) out.push(`<text x="${left + plotW / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(opts.title)}</text>`);
  for (let i = 0; yLo + i * yStep <= yHi + yStep * 1e-6; i++) {
    const y = yLo + i * yStep;
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${num(py(y))}" y2="${num(py(y))}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${left - 6}" y="${num(py(y) + 4)}" text-anchor="end">${yText(y)}</text>`);
  }
  for (let x = Math.ceil(xMin); x <= xMax; x += xStep) {
    out.push(`<line x1="${num(px(x))}" x2="${num(px(x))}" y1="${top + plotH}" y2="${top + plotH + 5}" stroke="#333333"/>`);
    out.push(`<text x="${num(px(x))}" y="${top + plotH + 18}" text-anchor="middle">${x}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`);
  if (opts.xLabel) out.push(`<text x="${left + plotW / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  if (opts.yLabel) {
    out.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(opts.yLabel)}</text>`);
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const strokeWidth = opts.highlight === i ? 3 : 1.5;
    const coords = good.map(([x, y]) => `${num(px(x))},${num(py(y))}`).join(' ');
    out.push(`<g data-series="${escapeXml(s.label)}">`);
    out.push(`<polyline points="${coords}" fill="none" stroke="${color}" stroke-width="${strokeWidth}"/>`);
    for (const [x, y] of good) out.push(`<circle cx="${num(px(x))}" cy="${num(py(y))}" r="2.5" fill="${color}"/>`);
    out.push('</g>');
    const ly = top + 10 + i * 18;
    out.push(
      `<line x1="${left + plotW + 14}" x2="${left + plotW + 34}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="${strokeWidth}"/>`,
    );
    out.push(`<text x="${left + plotW + 40}" y="${ly + 4}">${escapeXml(s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
