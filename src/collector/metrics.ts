/**
 * Prometheus metrics, kept in plain counters and written in the text exposition format
 * (https://prometheus.io/docs/instrumenting/exposition_formats/). No client library: the
 * collector needs counters, gauges and one histogram.
 */
export type Labels = Record<string, string>;

interface Series {
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: Map<string, number>;
}

/** Flush-latency buckets in seconds: group commits take milliseconds. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export class Metrics {
  private readonly series = new Map<string, Series>();

  private get(name: string, help: string, type: Series['type']): Series {
    let s = this.series.get(name);
    if (!s) {
      s = { help, type, values: new Map() };
      this.series.set(name, s);
    }
    return s;
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const s = this.get(name, help, 'counter');
    const key = labelText(labels);
    s.values.set(key, (s.values.get(key) ?? 0) + by);
  }

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    this.get(name, help, 'gauge').values.set(labelText(labels), value);
  }

  observe(name: string, help: string, seconds: number): void {
    const s = this.get(name, help, 'histogram');
    for (const b of BUCKETS) if (seconds <= b) s.values.set(`_bucket{le="${b}"}`, (s.values.get(`_bucket{le="${b}"}`) ?? 0) + 1);
    s.values.set('_bucket{le="+Inf"}', (s.values.get('_bucket{le="+Inf"}') ?? 0) + 1);
    s.values.set('_sum', (s.values.get('_sum') ?? 0) + seconds);
    s.values.set('_count', (s.values.get('_count') ?? 0) + 1);
  }

  /** The current value of a counter or gauge (tests and health checks read it). */
  value(name: string, labels: Labels = {}): number {
    return this.series.get(name)?.values.get(labelText(labels)) ?? 0;
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, s] of this.series) {
      lines.push(`# HELP ${name} ${s.help}`, `# TYPE ${name} ${s.type}`);
      if (s.type === 'histogram') {
        for (const b of [...BUCKETS.map(String), '+Inf']) lines.push(`${name}_bucket{le="${b}"} ${s.values.get(`_bucket{le="${b}"}`) ?? 0}`);
        lines.push(`${name}_sum ${s.values.get('_sum') ?? 0}`, `${name}_count ${s.values.get('_count') ?? 0}`);
      } else {
        for (const [key, v] of s.values) lines.push(`${name}${key} ${v}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }
}
