/**
 * The collector's dashboard: per model, a drift heat map (features × windows), the selected
 * feature's quantile bands over time, its latest window against the baseline, data-quality
 * counts per window, and the alerts. Reads the collector's query API with the admin token (from
 * the URL's #token=… once, then the session) and refreshes every few seconds.
 */
import uPlot from 'uplot';

interface FeatureSummary {
  name: string;
  kind: string;
  count: number;
  missing: number;
  nan: number;
  posInf: number;
  negInf: number;
  quantiles?: Record<string, number>;
}
interface WindowSummary {
  start: number;
  length: number;
  predictions: number;
  inputs: FeatureSummary[];
  outputs: FeatureSummary[];
  latency: FeatureSummary;
  events: Record<string, number>;
}
interface DriftResult {
  windowStart: number;
  baseline: string;
  role: string;
  feature: string;
  metric: string;
  value: number;
  threshold: number;
  drifted: boolean;
}
interface Alert {
  id: number;
  model: string;
  state: string;
  summary: string;
  openedAt: string;
  resolvedAt: string | null;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const REFRESH_MS = 5_000;

let token = '';
const selected = { feature: '' };
const charts: { bands: uPlot | null; histogram: uPlot | null } = { bands: null, histogram: null };

function readToken(): void {
  const fromHash = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    token = decodeURIComponent(fromHash[1]);
    sessionStorage.setItem('sketchwatch-token', token);
    history.replaceState(null, '', location.pathname + location.search);
  } else {
    token = sessionStorage.getItem('sketchwatch-token') ?? '';
  }
}

class Unauthorized extends Error {}

async function api<T>(path: string): Promise<T> {
  const r = await fetch(path, { headers: { authorization: `Bearer ${token}` } });
  if (r.status === 401 || r.status === 403) throw new Unauthorized('the admin token was refused');
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${(await r.text()).slice(0, 200)}`);
  return (await r.json()) as T;
}

function fillSelect(select: HTMLSelectElement, values: string[], keep: string): void {
  const current = select.value || keep;
  select.replaceChildren(...values.map((v) => new Option(v, v)));
  if (values.includes(current)) select.value = current;
}

const utc = (t: number) => new Date(t).toISOString().slice(11, 16);

/** Red for drifted, amber half way, green for quiet. */
function heatColour(ratio: number | undefined): string {
  if (ratio === undefined) return '#eef0f3';
  if (ratio >= 1) return '#d9534f';
  const t = Math.max(0, ratio);
  const mix = (a: number[], b: number[], k: number) => a.map((x, i) => Math.round(x + (b[i] - x) * k));
  const c = t < 0.5 ? mix([232, 243, 236], [246, 210, 139], t / 0.5) : mix([246, 210, 139], [231, 130, 100], (t - 0.5) / 0.5);
  return `rgb(${c.join(',')})`;
}

function renderHeatmap(results: DriftResult[], windows: number[]): string[] {
  const el = $('heatmap');
  if (results.length === 0) {
    el.innerHTML = '<p class="empty">No drift results yet: the detector evaluates a window once it holds enough predictions.</p>';
    return [];
  }
  const worst = new Map<string, { ratio: number; metrics: string[] }>();
  const features: string[] = [];
  for (const r of results) {
    const f = `${r.role}/${r.feature}`;
    if (!features.includes(f)) features.push(f);
    const key = `${f}|${r.windowStart}`;
    const ratio = r.threshold > 0 ? r.value / r.threshold : r.drifted ? 1 : 0;
    const cell = worst.get(key) ?? { ratio: 0, metrics: [] };
    cell.ratio = Math.max(cell.ratio, ratio);
    cell.metrics.push(`${r.metric} ${r.value.toFixed(3)} (threshold ${r.threshold.toFixed(3)})${r.drifted ? ' DRIFT' : ''}`);
    worst.set(key, cell);
  }
  features.sort((a, b) => (a.startsWith('input') === b.startsWith('input') ? a.localeCompare(b) : a.startsWith('input') ? -1 : 1));
  const cols = windows.slice(-48);
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  head.insertCell().textContent = '';
  for (const w of cols) {
    const th = document.createElement('th');
    th.textContent = utc(w).slice(3) === '00' || cols.length <= 12 ? utc(w) : '';
    th.style.fontWeight = 'normal';
    th.style.fontSize = '.8em';
    head.append(th);
  }
  const body = table.createTBody();
  for (const f of features) {
    const row = body.insertRow();
    const th = document.createElement('th');
    th.className = `feature${f.endsWith(`/${selected.feature}`) ? ' selected' : ''}`;
    th.textContent = f.replace('/', ' ');
    th.addEventListener('click', () => select(f.split('/')[1]));
    row.append(th);
    for (const w of cols) {
      const cell = worst.get(`${f}|${w}`);
      const td = row.insertCell();
      td.className = 'cell';
      td.style.background = heatColour(cell?.ratio);
      td.title = `${f} at ${new Date(w).toISOString()}\n${cell ? cell.metrics.join('\n') : 'no result'}`;
      td.dataset.ratio = cell ? cell.ratio.toFixed(3) : '';
      td.addEventListener('click', () => select(f.split('/')[1]));
    }
  }
  el.replaceChildren(table);
  // The features ordered by how far they drifted in the latest evaluated window.
  const last = Math.max(...results.map((r) => r.windowStart));
  return features.map((f) => [f.split('/')[1], worst.get(`${f}|${last}`)?.ratio ?? 0] as const).sort((a, b) => b[1] - a[1]).map(([f]) => f);
}

function renderBands(windows: WindowSummary[], feature: string, width: number, range: [number, number]): void {
  const xs: number[] = [];
  const q: Record<string, (number | null)[]> = { '0.05': [], '0.25': [], '0.5': [], '0.75': [], '0.95': [] };
  for (const w of windows) {
    const f = [...w.inputs, ...w.outputs, w.latency].find((x) => x.name === feature);
    xs.push(w.start / 1000);
    for (const k of Object.keys(q)) q[k].push(f?.quantiles?.[k] ?? null);
  }
  $('bands-title').textContent = `— ${feature}: median, 25–75 % and 5–95 % per window`;
  const data: uPlot.AlignedData = [xs, q['0.05'], q['0.25'], q['0.5'], q['0.75'], q['0.95']];
  const opts: uPlot.Options = {
    width,
    height: 260,
    // The selected time range, not just the windows that have data.
    scales: { x: { range: () => [range[0] / 1000, range[1] / 1000] } },
    series: [
      {},
      { label: 'p5', stroke: '#9db4e0' },
      { label: 'p25', stroke: '#5b82cf' },
      { label: 'median', stroke: '#1d3f8f', width: 2 },
      { label: 'p75', stroke: '#5b82cf' },
      { label: 'p95', stroke: '#9db4e0' },
    ],
    bands: [
      { series: [5, 1], fill: 'rgba(91,130,207,0.12)' },
      { series: [4, 2], fill: 'rgba(91,130,207,0.25)' },
    ],
    axes: [{}, { size: 60 }],
  };
  charts.bands?.destroy();
  charts.bands = new uPlot(opts, data, $('bands'));
}

interface Histogram {
  edges: number[];
  baselineShare: number[];
  currentShare: number[];
  baselineCount: number;
  currentCount: number;
}

function renderHistogram(h: Histogram | null, feature: string, width: number): void {
  charts.histogram?.destroy();
  charts.histogram = null;
  if (h === null || h.edges.length === 0) {
    $('hist-title').textContent = `— ${feature}: no baseline for this feature`;
    $('histogram').innerHTML = '<p class="empty">Upload a training baseline (sketchwatch baseline … --upload) to compare.</p>';
    return;
  }
  $('hist-title').textContent = `— ${feature}: share per baseline bin (${h.currentCount} vs ${h.baselineCount} observations)`;
  const xs = h.baselineShare.map((_, i) => i);
  const label = (i: number) => (i === 0 ? `≤ ${h.edges[0].toPrecision(3)}` : i >= h.edges.length ? `> ${h.edges[h.edges.length - 1].toPrecision(3)}` : `≤ ${h.edges[i].toPrecision(3)}`);
  const bars = uPlot.paths.bars!({ size: [0.4, 40], align: 1 });
  const bars2 = uPlot.paths.bars!({ size: [0.4, 40], align: -1 });
  const opts: uPlot.Options = {
    width,
    height: 260,
    scales: { x: { time: false } },
    series: [
      { label: 'bin', value: (_u, i) => (i === null ? '' : label(i)) },
      { label: 'baseline', fill: 'rgba(120,130,150,0.55)', stroke: '#6b7280', paths: bars },
      { label: 'latest window', fill: 'rgba(217,83,79,0.6)', stroke: '#d9534f', paths: bars2 },
    ],
    axes: [{ values: (_u, ticks) => ticks.map((i) => (Number.isInteger(i) ? label(i) : '')), rotate: -30, size: 60 } as uPlot.Axis, { size: 50 }],
  };
  $('histogram').replaceChildren();
  charts.histogram = new uPlot(opts, [xs, h.baselineShare, h.currentShare], $('histogram'));
}

function renderQuality(windows: WindowSummary[], feature: string): void {
  $('quality-title').textContent = `— ${feature}`;
  const body = $('quality');
  const rows = windows.slice(-12).reverse().map((w) => {
    const f = [...w.inputs, ...w.outputs, w.latency].find((x) => x.name === feature);
    const events = Object.entries(w.events).map(([k, v]) => `${k} ${v}`).join(', ');
    const tr = document.createElement('tr');
    for (const c of [`${utc(w.start)}–${utc(w.start + w.length)}`, w.predictions, f?.missing ?? 0, f?.nan ?? 0, (f?.posInf ?? 0) + (f?.negInf ?? 0), events || '—']) {
      const td = tr.insertCell();
      td.textContent = String(c);
    }
    return tr;
  });
  body.replaceChildren(...rows);
}

function renderAlerts(alerts: Alert[], model: string): void {
  const rows = alerts.filter((a) => a.model === model).slice(0, 30).map((a) => {
    const tr = document.createElement('tr');
    const state = tr.insertCell();
    state.textContent = a.state;
    state.className = a.state;
    tr.insertCell().textContent = a.summary;
    tr.insertCell().textContent = new Date(a.resolvedAt ?? a.openedAt).toISOString().replace('T', ' ').slice(0, 19);
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = tr.insertCell();
    td.colSpan = 3;
    td.className = 'empty';
    td.textContent = 'No alerts.';
    rows.push(tr);
  }
  $('alerts').replaceChildren(...rows);
}

let refreshing = false;
async function refresh(): Promise<void> {
  if (refreshing || token === '') return;
  refreshing = true;
  try {
    const projects = await api<{ id: string }[]>('/v1/projects');
    fillSelect($('project') as HTMLSelectElement, projects.map((p) => p.id), 'demo');
    const project = ($('project') as HTMLSelectElement).value;
    if (!project) throw new Error('no projects yet: create one (sketchwatch collector --project NAME)');
    const { models } = await api<{ models: { model: string }[] }>(`/v1/projects/${encodeURIComponent(project)}/models`);
    fillSelect($('model') as HTMLSelectElement, models.map((m) => m.model), 'weather');
    const model = ($('model') as HTMLSelectElement).value;
    const alerts = await api<{ alerts: Alert[] }>(`/v1/projects/${encodeURIComponent(project)}/alerts`);
    if (!model) {
      $('error').textContent = 'No data yet: no agent has sent anything to this project.';
      renderAlerts(alerts.alerts, '');
      return;
    }
    const base = `/v1/projects/${encodeURIComponent(project)}/models/${encodeURIComponent(model)}`;
    const { baselines } = await api<{ baselines: { name: string }[] }>(`${base}/baselines`);
    fillSelect($('baseline') as HTMLSelectElement, baselines.map((b) => b.name), 'training');
    const baseline = ($('baseline') as HTMLSelectElement).value;
    const to = Date.now() + 60_000;
    const from = to - Number(($('range') as HTMLSelectElement).value);
    const range = `from=${from}&to=${to}`;
    const [{ windows }, drift] = await Promise.all([
      api<{ windows: WindowSummary[] }>(`${base}/windows?${range}`),
      baseline ? api<{ results: DriftResult[] }>(`${base}/drift?${range}&baseline=${encodeURIComponent(baseline)}`) : Promise.resolve({ results: [] }),
    ]);
    windows.sort((a, b) => a.start - b.start);
    const starts = [...new Set([...windows.map((w) => w.start), ...drift.results.map((r) => r.windowStart)])].sort((a, b) => a - b);
    const ranked = renderHeatmap(drift.results, starts);
    const names = windows.length > 0 ? [...windows[windows.length - 1].inputs, ...windows[windows.length - 1].outputs].map((f) => f.name) : [];
    if (!selected.feature || !names.includes(selected.feature)) selected.feature = ranked[0] ?? names[0] ?? '';
    const feature = selected.feature;
    const width = Math.max(300, ($('bands').parentElement!.clientWidth || 600) - 30);
    const histWidth = Math.max(260, ($('histogram').parentElement!.clientWidth || 400) - 30);
    if (feature) {
      renderBands(windows, feature, width, [from, to]);
      const latest = windows[windows.length - 1];
      let hist: Histogram | null = null;
      if (baseline && latest) {
        hist = await api<Histogram>(`${base}/features/${encodeURIComponent(feature)}/histogram?from=${latest.start}&to=${latest.start + latest.length}&baseline=${encodeURIComponent(baseline)}`).catch(() => null);
      }
      renderHistogram(hist, feature, histWidth);
      renderQuality(windows, feature);
    }
    renderAlerts(alerts.alerts, model);
    $('error').textContent = '';
    $('updated').textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    document.body.dataset.ready = 'true';
  } catch (e) {
    if (e instanceof Unauthorized) {
      $('login').hidden = false;
      sessionStorage.removeItem('sketchwatch-token');
      token = '';
    }
    $('error').textContent = (e as Error).message;
  } finally {
    refreshing = false;
  }
}

function select(feature: string): void {
  selected.feature = feature;
  void refresh();
}

/** For tests and the console: how many data points the charts hold. */
(window as unknown as { dashboard: unknown }).dashboard = {
  points: () => {
    let n = 0;
    for (const chart of [charts.bands, charts.histogram]) {
      for (const series of chart?.data.slice(1) ?? []) {
        const values = series as ArrayLike<number | null | undefined>;
        for (let i = 0; i < values.length; i++) if (values[i] !== null && values[i] !== undefined) n++;
      }
    }
    return n;
  },
};

readToken();
if (token === '') $('login').hidden = false;
$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = ($('token') as HTMLInputElement).value.trim();
  sessionStorage.setItem('sketchwatch-token', token);
  $('login').hidden = true;
  void refresh();
});
for (const id of ['project', 'model', 'range', 'baseline']) $(id).addEventListener('change', () => void refresh());
setInterval(() => void refresh(), REFRESH_MS);
void refresh();
