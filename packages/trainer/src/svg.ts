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
// Beyond the palette, each further round of colours gets its own dash pattern (and marker), so no two series look alike.
const DASHES = ['', '7 4', '2 3', '9 3 2 3', '4 2 1 2 1 2'];
const MAX_MARKERS = 200;
const MARKERS = ['circle', 'square', 'triangle', 'diamond', 'cross'] as const;

/** Colour, dash pattern and marker of the i-th series: distinct for the first 50. */
export function seriesStyle(i: number): { color: string; dash: string; marker: (typeof MARKERS)[number] } {
  const round = Math.floor(i / COLORS.length);
  return { color: COLORS[i % COLORS.length]!, dash: DASHES[round % DASHES.length]!, marker: MARKERS[round % MARKERS.length]! };
}

function marker(kind: (typeof MARKERS)[number], x: number, y: number, color: string): string {
  const r = 2.8;
  if (kind === 'circle') return `<circle cx="${num(x)}" cy="${num(y)}" r="2.5" fill="${color}"/>`;
  if (kind === 'square') return `<rect x="${num(x - r)}" y="${num(y - r)}" width="${num(2 * r)}" height="${num(2 * r)}" fill="${color}"/>`;
  if (kind === 'cross') {
    return `<path d="M${num(x - r)} ${num(y - r)}L${num(x + r)} ${num(y + r)}M${num(x - r)} ${num(y + r)}L${num(x + r)} ${num(y - r)}" stroke="${color}" stroke-width="1.5"/>`;
  }
  const pts =
    kind === 'triangle'
      ? [
          [x, y - r],
          [x + r, y + r],
          [x - r, y + r],
        ]
      : [
          [x, y - r - 0.5],
          [x + r + 0.5, y],
          [x, y + r + 0.5],
          [x - r - 0.5, y],
        ];
  return `<polygon points="${pts.map(([a, b]) => `${num(a!)},${num(b!)}`).join(' ')}" fill="${color}"/>`;
}

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
  // Loops, not Math.min(...xs): a long run has more points than a call has arguments.
  let xMin = 0;
  let xMax = 1;
  let yMin = Number.POSITIVE_INFINITY;
  let yMax = Number.NEGATIVE_INFINITY;
  for (const [x, y] of pts) {
    if (x < xMin) xMin = x;
    if (x > xMax) xMax = x;
    if (y < yMin) yMin = y;
    if (y > yMax) yMax = y;
  }
  if (xMax - xMin < 1) xMax = xMin + 1;
  let yLo = pts.length ? yMin : 0;
  let yHi = pts.length ? yMax : 1;
  if (yHi - yLo < 1e-9) {
    yLo -= 0.05;
    yHi += 0.05;
  }
  const yStep = niceStep(yHi - yLo, 5);
  yLo = Math.floor(yLo / yStep) * yStep;
  yHi = Math.ceil(yHi / yStep) * yStep;
  // Rounding can leave the extreme value a hair outside the ticks: widen by a step then.
  if (pts.length && yLo > yMin) yLo -= yStep;
  if (pts.length && yHi < yMax) yHi += yStep;
  const xStep = Math.max(1, niceStep(xMax - xMin, 8));
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
  for (let x = Math.ceil(xMin / xStep) * xStep; x <= xMax + 1e-9; x += xStep) {
    out.push(`<line x1="${num(px(x))}" x2="${num(px(x))}" y1="${top + plotH}" y2="${top + plotH + 5}" stroke="#333333"/>`);
    out.push(`<text x="${num(px(x))}" y="${top + plotH + 18}" text-anchor="middle">${x}</text>`);
  }
  out.push(`<rect data-role="plot" x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`);
  if (opts.xLabel) out.push(`<text x="${left + plotW / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  if (opts.yLabel) {
    out.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(opts.yLabel)}</text>`);
  }
  // The legend's rows shrink to fit the plot's height when there are many series.
  const rowH = Math.max(11, Math.min(18, (plotH - 10) / Math.max(1, series.length)));
  series.forEach((s, i) => {
    const { color, dash, marker: shape } = seriesStyle(i);
    const dashAttr = dash ? ` stroke-dasharray="${dash}"` : '';
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const strokeWidth = opts.highlight === i ? 3 : 1.5;
    const coords = good.map(([x, y]) => `${num(px(x))},${num(py(y))}`).join(' ');
    out.push(`<g data-series="${escapeXml(s.label)}">`);
    if (good.length > 1) out.push(`<polyline points="${coords}" fill="none" stroke="${color}" stroke-width="${strokeWidth}"${dashAttr}/>`);
    // Markers while they can be told apart; a long per-step curve is a line only.
    if (good.length <= MAX_MARKERS) for (const [x, y] of good) out.push(marker(shape, px(x), py(y), color));
    out.push('</g>');
    const ly = top + 10 + i * rowH;
    out.push(
      `<line x1="${left + plotW + 14}" x2="${left + plotW + 34}" y1="${num(ly)}" y2="${num(ly)}" stroke="${color}" stroke-width="${strokeWidth}"${dashAttr}/>`,
    );
    out.push(`<text x="${left + plotW + 40}" y="${num(ly + 4)}"${rowH < 14 ? ' font-size="10"' : ''}>${escapeXml(s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
