/**
 * A live loss curve in SVG: `push` a value per step; the y range follows the data (its minimum to
 * its maximum with a margin, recomputed for every point), so a loss that rises above its first
 * value stays inside the plot. Axes carry ticks and the names "step" and "loss".
 */

/** The plot area inside the 600 × 240 viewBox. */
export const PLOT = { left: 52, right: 576, top: 12, bottom: 204 } as const;
const WIDTH = 600;
const HEIGHT = 240;

/** A round step for about `count` intervals over `span` (1, 2 or 5 times a power of ten). */
function niceStep(span: number, count: number): number {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  return (scaled >= 7 ? 10 : scaled >= 3 ? 5 : scaled >= 1.5 ? 2 : 1) * power;
}

/**
 * The y range for `values`: their minimum and maximum widened by 8 % of the span on each side
 * (a flat series by 5 % of its value, at least 0.01), and round ticks inside that range.
 */
export function lossRange(values: readonly number[]): { min: number; max: number; ticks: number[] } {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { min: 0, max: 1, ticks: [0, 0.5, 1] };
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const margin = hi > lo ? 0.08 * (hi - lo) : Math.max(0.05 * Math.abs(hi), 0.01);
  const min = lo - margin;
  const max = hi + margin;
  const step = niceStep(max - min, 4);
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-12; v += step) ticks.push(Number(v.toPrecision(12)));
  return { min, max, ticks };
}

/** Step numbers to label on the x axis: 1, the last, and round steps between. */
export function stepTicks(steps: number): number[] {
  if (steps <= 1) return [1];
  const step = Math.max(1, niceStep(steps - 1, 6));
  const ticks = [1];
  for (let v = step; v < steps; v += step) if (v - 1 >= step / 2 && steps - v >= step / 2) ticks.push(v);
  ticks.push(steps);
  return ticks;
}

/** Decimals that tell the ticks apart. */
function decimals(ticks: readonly number[]): number {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : 1;
  return Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9))); // 1.4 − 1.3 is 0.0999…: one decimal, not two
}

const NS = 'http://www.w3.org/2000/svg';

function svgElement<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export class LossChart {
  private readonly values: number[] = [];
  private readonly line: SVGPolylineElement;
  private readonly xAxis: SVGGElement;
  private readonly yAxis: SVGGElement;

  constructor(
    readonly svg: SVGSVGElement,
    private steps: number,
  ) {
    svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
    svg.replaceChildren();
    const frame = svgElement('path', { d: `M${PLOT.left} ${PLOT.top} V${PLOT.bottom} H${PLOT.right}`, class: 'axis' });
    const xAxis = svgElement('g', { class: 'x-ticks' });
    this.xAxis = xAxis;
    this.drawSteps();
    const xName = svgElement('text', { x: (PLOT.left + PLOT.right) / 2, y: HEIGHT - 4, 'text-anchor': 'middle', class: 'axis-name' });
    xName.textContent = 'step';
    const yName = svgElement('text', {
      x: 0,
      y: 0,
      transform: `translate(12 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)`,
      'text-anchor': 'middle',
      class: 'axis-name',
    });
    yName.textContent = 'loss';
    this.yAxis = svgElement('g', { class: 'y-ticks' });
    this.line = svgElement('polyline', { class: 'loss', points: '' });
    svg.append(this.yAxis, frame, xAxis, xName, yName, this.line);
  }

  /** Step ticks along the x axis for `this.steps`. */
  private drawSteps(): void {
    this.xAxis.replaceChildren();
    for (const s of stepTicks(this.steps)) {
      const x = this.x(s);
      this.xAxis.append(svgElement('path', { d: `M${x.toFixed(1)} ${PLOT.bottom} v4`, class: 'axis' }));
      const label = svgElement('text', { x: x.toFixed(1), y: PLOT.bottom + 16, 'text-anchor': 'middle' });
      label.textContent = String(s);
      this.xAxis.append(label);
    }
  }

  /** Fits the x axis to the steps drawn so far (after a stopped run), so the curve spans the plot. */
  fitSteps(): void {
    if (this.values.length < 2 || this.values.length === this.steps) return;
    this.steps = this.values.length;
    this.drawSteps();
    this.draw();
  }

  /** A line of text in the empty plot (before the first point). */
  placeholder(text: string): void {
    const note = svgElement('text', {
      x: (PLOT.left + PLOT.right) / 2,
      y: (PLOT.top + PLOT.bottom) / 2,
      'text-anchor': 'middle',
      class: 'placeholder',
    });
    note.textContent = text;
    this.yAxis.append(note);
  }

  private x(step: number): number {
    return PLOT.left + ((PLOT.right - PLOT.left) * (step - 1)) / Math.max(1, this.steps - 1);
  }

  push(loss: number): void {
    this.values.push(loss);
    this.draw();
  }

  private draw(): void {
    const { min, max, ticks } = lossRange(this.values);
    const y = (v: number) => PLOT.bottom - ((PLOT.bottom - PLOT.top) * (v - min)) / (max - min);
    const digits = decimals(ticks);
    this.yAxis.replaceChildren();
    for (const t of ticks) {
      const ty = y(t).toFixed(1);
      this.yAxis.append(svgElement('path', { d: `M${PLOT.left - 4} ${ty} H${PLOT.right}`, class: 'grid' }));
      const label = svgElement('text', { x: PLOT.left - 6, y: Number(ty) + 4, 'text-anchor': 'end' });
      label.textContent = t.toFixed(digits);
      this.yAxis.append(label);
    }
    const points = this.values.flatMap((v, i) => (Number.isFinite(v) ? [`${this.x(i + 1).toFixed(1)},${y(v).toFixed(1)}`] : []));
    this.line.setAttribute('points', points.join(' '));
  }
}
