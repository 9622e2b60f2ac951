import { describe, expect, it } from 'vitest';
import { lineChartSvg, type Series, seriesStyle } from './svg.js';

interface Parsed {
  plot: { x: number; y: number; w: number; h: number };
  groups: { label: string; stroke: string | null; dash: string; points: [number, number][]; markers: string[] }[];
  legend: { stroke: string; dash: string }[];
  texts: string[];
  xTicks: string[];
  yTicks: number[];
}

const attr = (tag: string, name: string): string | null => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1] ?? null;

/** Reads what a reader of the chart sees: the plot frame, each series' line and markers, the legend and the texts. */
function parseChart(svg: string): Parsed {
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  const frame = /<rect data-role="plot"[^>]*>/.exec(svg)![0];
  const plot = {
    x: Number(attr(frame, 'x')),
    y: Number(attr(frame, 'y')),
    w: Number(attr(frame, 'width')),
    h: Number(attr(frame, 'height')),
  };
  const groups: Parsed['groups'] = [];
  for (const m of svg.matchAll(/<g data-series="([^"]*)">([\s\S]*?)<\/g>/g)) {
    const body = m[2]!;
    const line = /<polyline[^>]*>/.exec(body)?.[0] ?? null;
    const points: [number, number][] = [];
    const markers: string[] = [];
    for (const c of body.matchAll(/<(circle|rect|polygon|path)[^>]*>/g)) {
      const tag = c[0];
      markers.push(c[1]!);
      if (c[1] === 'circle') points.push([Number(attr(tag, 'cx')), Number(attr(tag, 'cy'))]);
      else if (c[1] === 'rect')
        points.push([Number(attr(tag, 'x')) + Number(attr(tag, 'width')) / 2, Number(attr(tag, 'y')) + Number(attr(tag, 'height')) / 2]);
      else if (c[1] === 'polygon') {
        const xy = attr(tag, 'points')!
          .split(' ')
          .map((p) => p.split(',').map(Number));
        points.push([xy.reduce((s, p) => s + p[0]!, 0) / xy.length, xy.reduce((s, p) => s + p[1]!, 0) / xy.length]);
      } else {
        const nums = attr(tag, 'd')!
          .match(/-?[\d.]+/g)!
          .map(Number);
        points.push([(nums[0]! + nums[2]!) / 2, (nums[1]! + nums[3]!) / 2]);
      }
    }
    if (line) {
      for (const p of attr(line, 'points')!.split(' ')) {
        const [x, y] = p.split(',').map(Number);
        points.push([x!, y!]);
      }
    }
    groups.push({
      label: m[1]!,
      stroke: line ? attr(line, 'stroke') : null,
      dash: line ? (attr(line, 'stroke-dasharray') ?? '') : '',
      points,
      markers,
    });
  }
  const legend = [
    ...svg.matchAll(
      /<line x1="(\d+(?:\.\d+)?)" x2="[^"]*" y1="[^"]*" y2="[^"]*" stroke="([^"]*)" stroke-width="[^"]*"(?: stroke-dasharray="([^"]*)")?\/>/g,
    ),
  ]
    .filter((m) => Number(m[1]) > plot.x + plot.w)
    .map((m) => ({ stroke: m[2]!, dash: m[3] ?? '' }));
  const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);
  const xTicks = [...svg.matchAll(/<text x="[^"]*" y="([^"]*)" text-anchor="middle">([^<]*)<\/text>/g)]
    .filter((m) => Number(m[1]) === plot.y + plot.h + 18)
    .map((m) => m[2]!);
  const yTicks = [...svg.matchAll(/<text x="[^"]*" y="[^"]*" text-anchor="end">([^<]*)<\/text>/g)].map((m) => Number(m[1]));
  return { plot, groups, legend, texts, xTicks, yTicks };
}

function expectInside(p: Parsed) {
  for (const g of p.groups) {
    for (const [x, y] of g.points) {
      expect(x, `${g.label} x`).toBeGreaterThanOrEqual(p.plot.x - 0.01);
      expect(x, `${g.label} x`).toBeLessThanOrEqual(p.plot.x + p.plot.w + 0.01);
      expect(y, `${g.label} y`).toBeGreaterThanOrEqual(p.plot.y - 0.01);
      expect(y, `${g.label} y`).toBeLessThanOrEqual(p.plot.y + p.plot.h + 0.01);
    }
  }
}

describe('lineChartSvg', () => {
  it("gives 12 series 12 different looks (colour and dash pattern, marker) in the lines and the legend, like the study's sweep", () => {
    const series: Series[] = Array.from({ length: 12 }, (_, i) => ({
      label: `lr=${[1e-4, 3e-4, 5e-4, 1e-3][i % 4]},template=${Math.floor(i / 4)}`,
      points: Array.from({ length: 11 }, (_, e) => [e, 0.1 + (0.8 * e) / 10 - i * 0.01] as const),
    }));
    const p = parseChart(lineChartSvg(series, { title: 'sweep', xLabel: 'epoch', yLabel: 'val F1 (%)', percent: true, highlight: 3 }));
    expect(p.groups.map((g) => g.label)).toEqual(series.map((s) => s.label));
    const looks = p.groups.map((g) => `${g.stroke}|${g.dash}|${g.markers[0]}`);
    expect(new Set(looks).size).toBe(12);
    expect(p.legend).toHaveLength(12);
    expect(new Set(p.legend.map((l) => `${l.stroke}|${l.dash}`)).size).toBe(12);
    // The 11th and 12th series reuse the first two colours, so they must differ in dash and marker.
    expect(p.groups[10]!.stroke).toBe(p.groups[0]!.stroke);
    expect(p.groups[10]!.dash).not.toBe(p.groups[0]!.dash);
    expect(p.groups[10]!.markers[0]).not.toBe(p.groups[0]!.markers[0]);
    for (const s of series) expect(p.texts).toContain(s.label.replace(/&/g, '&amp;'));
    expect(p.texts).toEqual(expect.arrayContaining(['sweep', 'epoch', 'val F1 (%)']));
    expectInside(p);
    const styles = Array.from({ length: 50 }, (_, i) => seriesStyle(i));
    expect(new Set(styles.map((s) => `${s.color}|${s.dash}|${s.marker}`)).size).toBe(50);
  });

  it('keeps a loss that rises above its first value, and one far below, inside the plot; ticks span the data', () => {
    const rising: Series = {
      label: 'loss',
      points: [
        [0, 2.2],
        [10, 1.9],
        [20, 3.7],
        [30, 9.4],
        [40, 0.05],
      ],
    };
    const p = parseChart(lineChartSvg([rising], { xLabel: 'optimizer step', yLabel: 'loss' }));
    expectInside(p);
    expect(p.groups[0]!.points.length).toBe(5 + 5);
    expect(Math.max(...p.yTicks)).toBeGreaterThanOrEqual(9.4);
    expect(Math.min(...p.yTicks)).toBeLessThanOrEqual(0.05);
    // The x ticks are round steps, not every ⌈40/10⌉ = 4.
    expect(p.xTicks).toEqual(['0', '5', '10', '15', '20', '25', '30', '35', '40']);
  });

  it('draws 130,000 points without running out of stack, and skips non-finite ones', () => {
    const many = Array.from({ length: 130_000 }, (_, i) => [i, Math.sin(i / 1000)] as const);
    const svg = lineChartSvg([
      { label: 'long', points: many },
      {
        label: 'bad',
        points: [
          [0, Number.NaN],
          [1, Number.POSITIVE_INFINITY],
          [2, 0.5],
        ],
      },
    ]);
    const p = parseChart(svg);
    expect(p.groups).toHaveLength(2);
    expect(p.groups[1]!.points).toHaveLength(1);
    expectInside({ ...p, groups: [p.groups[1]!] });
  });

  it('an empty chart still has its frame and no series', () => {
    const p = parseChart(lineChartSvg([], { title: 'nothing yet' }));
    expect(p.groups).toEqual([]);
    expect(p.plot.w).toBeGreaterThan(0);
  });
});
