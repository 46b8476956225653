// The demo page: streams held-out Seattle weather days through the model, in sketchwatch's
// worker, under a scenario a person picks. Plain ES modules, no build step: it imports the
// built package as any page would.
import sketchwatch from '/dist/agent/index.js';

const FEATURES = ['precipitation', 'temp_max', 'temp_min', 'wind'];
const CLASSES = ['drizzle', 'fog', 'rain', 'snow', 'sun'];
const $ = (id) => document.getElementById(id);

const state = { scenario: 'normal', running: true, made: 0, brokenSince: 0, model: null };

/** What a scenario does to a day before the model sees it. */
const SCENARIOS = {
  normal: (day) => day,
  seasonal: (day) => day, // the days themselves are chosen (summer only): see nextDay()
  broken: (day) => ({ ...day, wind: state.made - state.brokenSince < 40 ? NaN : 0 }),
  units: (day) => ({ ...day, temp_max: day.temp_max * 9 / 5 + 32, temp_min: day.temp_min * 9 / 5 + 32 }),
};

// Days are drawn at random (a fixed-seed generator): normal traffic then looks like the whole
// held-out period, every season, as the training data does.
let seed = 20140101;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

function nextDay(days) {
  for (let tries = 0; tries < 10_000; tries++) {
    const day = days[Math.floor(random() * days.length)];
    if (state.scenario !== 'seasonal') return day;
    const month = Number(day.date.slice(5, 7));
    if (month >= 6 && month <= 8) return day;
  }
  return days[0];
}

const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

function showPrediction(day, probabilities) {
  const top = Math.max(...probabilities);
  const predicted = CLASSES[probabilities.indexOf(top)];
  const tr = document.createElement('tr');
  const cells = [day.date, fmt(day.precipitation), fmt(day.temp_max), fmt(day.temp_min), fmt(day.wind)];
  for (const [i, c] of cells.entries()) {
    const td = document.createElement('td');
    td.textContent = c;
    if (i > 0 && (c === 'NaN' || (state.scenario === 'units' && (i === 2 || i === 3)))) td.className = 'bad';
    tr.append(td);
  }
  for (const c of [`${predicted} ${(100 * top).toFixed(0)} %`, day.weather]) {
    const td = document.createElement('td');
    td.className = 'cls';
    td.textContent = c;
    tr.append(td);
  }
  const body = $('predictions');
  body.prepend(tr);
  while (body.rows.length > 8) body.deleteRow(-1);
}

function showStatus(s) {
  const end = new Date(s.windowStart + s.windowMs);
  $('s-scenario').textContent = state.scenario;
  $('s-window').textContent = `${new Date(s.windowStart).toISOString().slice(11, 19)}–${end.toISOString().slice(11, 19)} UTC`;
  $('s-made').textContent = state.made;
  $('s-predictions').textContent = s.predictions;
  $('s-unsaved').textContent = s.unsaved;
  $('s-store').textContent = s.store;
  $('s-sender').textContent = s.sender ? 'this tab' : 'another tab';
  $('s-queued').textContent = s.outboxBatches;
  $('s-sent').textContent = s.batchesSent;
  $('s-acked').textContent = `${s.batchesAcknowledged}${s.duplicatesAcknowledged ? ` (${s.duplicatesAcknowledged} as duplicates)` : ''}`;
  $('s-bytes').textContent = `${(s.bytesSent / 1024).toFixed(1)} KiB`;
  $('s-last').textContent = s.lastError ?? (s.lastStatus === null ? '—' : `HTTP ${s.lastStatus}`);
}

async function main() {
  const config = await (await fetch('config.json')).json();
  const days = await (await fetch('data/holdout.json')).json();
  if (config.dashboard) $('dashboard-link').href = config.dashboard;
  const model = await sketchwatch.load({
    modelUrl: 'model/model.json',
    collector: config.collector ?? location.origin,
    key: config.key,
    model: 'weather',
    version: '1',
    inputs: FEATURES,
    outputs: CLASSES,
    window: config.window ?? 60_000,
    flushInterval: config.flushInterval ?? 5_000,
  });
  state.model = model;
  $('backend').textContent = `backend: ${model.backend}`;
  // For tests and the curious: window.demo.
  window.demo = { model, state, setScenario };

  let inFlight = false;
  const tick = async () => {
    if (!state.running || inFlight) return;
    inFlight = true;
    try {
      const day = SCENARIOS[state.scenario](nextDay(days));
      const [probabilities] = await model.predict([FEATURES.map((f) => day[f])]);
      state.made++;
      showPrediction(day, probabilities);
    } catch (e) {
      $('error').textContent = e.message;
    } finally {
      inFlight = false;
    }
  };
  let timer = setInterval(tick, 1000 / Number($('speed').value));
  $('speed').addEventListener('change', () => {
    clearInterval(timer);
    timer = setInterval(tick, 1000 / Number($('speed').value));
  });
  $('toggle').addEventListener('click', () => {
    state.running = !state.running;
    $('toggle').textContent = state.running ? 'Pause' : 'Resume';
  });
  for (const input of document.querySelectorAll('input[name=scenario]')) {
    input.addEventListener('change', () => setScenario(input.value));
  }
  const poll = async () => {
    try {
      showStatus(await model.status());
    } catch {
      /* shown on the next poll */
    }
  };
  setInterval(poll, 1000);
  poll();
}

function setScenario(name) {
  if (!(name in SCENARIOS)) throw new Error(`no scenario ${name}`);
  state.scenario = name;
  if (name === 'broken') state.brokenSince = state.made;
  const radio = document.querySelector(`input[name=scenario][value=${name}]`);
  if (radio) radio.checked = true;
  $('s-scenario').textContent = name;
}

main().catch((e) => {
  $('error').textContent = `The demo could not start: ${e.message}`;
});
