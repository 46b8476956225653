import type { FeatureProfile, WindowProfile } from '../sketch/index.js';
import { compareFeatures, type CompareOptions, type FeatureComparison } from './compareFeatures.js';
import { rateExceeded } from './quality.js';

export type FeatureRole = 'input' | 'output' | 'latency';

export interface SchemaProblem {
  role: FeatureRole;
  feature: string;
  /**
   * missing: in the baseline, not in the current window; added: the reverse; kindChanged:
   * numeric / classes / labels differ; classesChanged: a class vector's labels differ.
   */
  problem: 'missing' | 'added' | 'kindChanged' | 'classesChanged';
}

export interface EventComparison {
  name: string;
  /** Events per prediction. */
  baselineRate: number;
  currentRate: number;
  exceeded: boolean;
}

export interface WindowComparison {
  features: Array<FeatureComparison & { role: FeatureRole }>;
  schema: SchemaProblem[];
  events: EventComparison[];
}

export interface WindowCompareOptions {
  /** Options per feature (bins fixed with the baseline, calibrated thresholds, …). */
  featureOptions?: (role: FeatureRole, name: string) => CompareOptions | undefined;
  /** How far an event's rate per prediction may rise over the baseline's before it is reported. */
  eventTolerance?: number;
}

/** Events per prediction an event may rise by before it is reported: one in a thousand. */
export const DEFAULT_EVENT_TOLERANCE = 0.001;

/**
 * Compares every feature present on both sides (inputs, outputs, latency), reports schema
 * problems (features on one side only, kind or class changes) and event rates per prediction.
 * Never throws on empty windows.
 */
export function compareWindows(baseline: WindowProfile, current: WindowProfile, options: WindowCompareOptions = {}): WindowComparison {
  const features: WindowComparison['features'] = [];
  const schema: SchemaProblem[] = [];
  const compare = (role: FeatureRole, b: FeatureProfile, c: FeatureProfile): void => {
    features.push({ role, ...compareFeatures(b, c, options.featureOptions?.(role, b.name)) });
    if (b.kind !== c.kind) schema.push({ role, feature: b.name, problem: 'kindChanged' });
    else if (b.classes !== null && c.classes !== null && !b.classes.sameLabels(c.classes)) {
      schema.push({ role, feature: b.name, problem: 'classesChanged' });
    }
  };
  for (const [role, b, c] of [['input', baseline.inputs, current.inputs], ['output', baseline.outputs, current.outputs]] as const) {
    for (const [name, profile] of b) {
      const other = c.get(name);
      if (other === undefined) schema.push({ role, feature: name, problem: 'missing' });
      else compare(role, profile, other);
    }
    for (const name of c.keys()) if (!b.has(name)) schema.push({ role, feature: name, problem: 'added' });
  }
  compare('latency', baseline.latency, current.latency);
  return { features, schema, events: compareEvents(baseline, current, options.eventTolerance ?? DEFAULT_EVENT_TOLERANCE) };
}

function compareEvents(baseline: WindowProfile, current: WindowProfile, tolerance: number): EventComparison[] {
  const names = [...new Set([...baseline.events.keys(), ...current.events.keys()])].sort();
  return names.map((name) => {
    const b = baseline.events.get(name) ?? 0;
    const c = current.events.get(name) ?? 0;
    return {
      name,
      baselineRate: baseline.predictions > 0 ? b / baseline.predictions : 0,
      currentRate: current.predictions > 0 ? c / current.predictions : 0,
      exceeded: rateExceeded(b, baseline.predictions, c, current.predictions, tolerance),
    };
  });
}
