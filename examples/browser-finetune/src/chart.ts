/** A live loss curve in SVG: `push` a value per step, the polyline and the axis labels follow. */
export class LossChart {
  private readonly values: number[] = [];
  private readonly line: SVGPolylineElement;
  private readonly top: SVGTextElement;
  private readonly bottom: SVGTextElement;
  private readonly width = 600;
  private readonly height = 220;

  constructor(
    readonly svg: SVGSVGElement,
    private readonly steps: number,
  ) {
    const ns = 'http://www.w3.org/2000/svg';
    svg.setAttribute('viewBox', `0 0 ${this.width} ${this.height}`);
    svg.replaceChildren();
    const axis = document.createElementNS(ns, 'path');
    axis.setAttribute('d', `M40 10 V${this.height - 20} H${this.width - 10}`);
    axis.setAttribute('class', 'axis');
    this.line = document.createElementNS(ns, 'polyline');
    this.line.setAttribute('class', 'loss');
    this.top = document.createElementNS(ns, 'text');
    this.top.setAttribute('x', '2');
    this.top.setAttribute('y', '16');
    this.bottom = document.createElementNS(ns, 'text');
    this.bottom.setAttribute('x', '2');
    this.bottom.setAttribute('y', String(this.height - 20));
    const label = document.createElementNS(ns, 'text');
    label.setAttribute('x', String(this.width - 10));
    label.setAttribute('y', String(this.height - 4));
    label.setAttribute('text-anchor', 'end');
    label.textContent = `step (of ${steps})`;
    svg.append(axis, this.line, this.top, this.bottom, label);
  }

  push(loss: number): void {
    this.values.push(loss);
    const max = Math.max(...this.values);
    const min = Math.min(0, ...this.values);
    const x = (i: number) => 40 + ((this.width - 50) * i) / Math.max(1, this.steps - 1);
    const y = (v: number) => 10 + (this.height - 30) * (1 - (v - min) / (max - min || 1));
    this.line.setAttribute('points', this.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '));
    this.top.textContent = max.toFixed(2);
    this.bottom.textContent = min.toFixed(2);
  }
}
