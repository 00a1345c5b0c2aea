// Model options are declared, not tunnelled: each registration lists its free options with their
// types and ranges, and the fixed configuration that defines the variant. buildModel refuses a
// misspelt option (naming the nearest valid one) and a change to what the variant fixes, as
// torchvision's _ovewrite_named_param does ("The parameter 'groups' expected value 32 but got 1").
import { ConvzooError } from '../errors.js';
import type { ModelOptions } from './registry.js';

/** The type and range of one free option. */
export type OptionSpec =
  | { kind: 'int'; min: number; max?: number }
  | { kind: 'number'; min: number; max?: number; maxExclusive?: boolean }
  | { kind: 'boolean' }
  | { kind: 'oneOf'; values: readonly (string | number)[] }
  | { kind: 'function' };

/** Constructors of option specs: `{ zeroInitResidual: opt.boolean(), dropPathRate: opt.rate() }`. */
export const opt = {
  int: (min = -Infinity, max?: number): OptionSpec => ({ kind: 'int', min, max }),
  number: (min = -Infinity, max?: number): OptionSpec => ({ kind: 'number', min, max }),
  /** A probability that must stay below 1 (dropout, drop path). */
  rate: (): OptionSpec => ({ kind: 'number', min: 0, max: 1, maxExclusive: true }),
  boolean: (): OptionSpec => ({ kind: 'boolean' }),
  oneOf: (...values: (string | number)[]): OptionSpec => ({ kind: 'oneOf', values }),
  /** A factory or callback (programmatic use only: JSON options cannot carry one). */
  function: (): OptionSpec => ({ kind: 'function' }),
};

/** The options every family takes. */
export const COMMON_OPTIONS: Readonly<Record<keyof ModelOptions, OptionSpec>> = {
  numClasses: opt.int(1),
  inChans: opt.int(1),
  dropRate: opt.rate(),
};

/** A spec for every option of `O` beyond the common ones (the compiler checks that none is left out). */
export type OptionTable<O> = { readonly [K in Exclude<keyof O, keyof ModelOptions>]-?: OptionSpec };

function describe(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'int':
      return `an integer${spec.min > -Infinity ? ` >= ${spec.min}` : ''}${spec.max !== undefined ? ` and <= ${spec.max}` : ''}`;
    case 'number':
      return `a number${spec.min > -Infinity ? ` >= ${spec.min}` : ''}${spec.max !== undefined ? ` and ${spec.maxExclusive ? '<' : '<='} ${spec.max}` : ''}`;
    case 'boolean':
      return 'true or false';
    case 'oneOf':
      return `one of ${spec.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'function':
      return 'a function';
  }
}

function fits(spec: OptionSpec, v: unknown): boolean {
  switch (spec.kind) {
    case 'int':
      return Number.isInteger(v) && (v as number) >= spec.min && (spec.max === undefined || (v as number) <= spec.max);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) && v >= spec.min && (spec.max === undefined || (spec.maxExclusive ? v < spec.max : v <= spec.max));
    case 'boolean':
      return typeof v === 'boolean';
    case 'oneOf':
      return spec.values.includes(v as string | number);
    case 'function':
      return typeof v === 'function';
  }
}

/** Same value: identical, or equal plain data (arrays and objects compared by their JSON). */
function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

const show = (v: unknown): string => (typeof v === 'function' ? v.name || 'a function' : (JSON.stringify(v) ?? String(v)));

/** Levenshtein distance (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

/** The key of `keys` nearest to `key` (case-insensitive), if it is near enough to be a misspelling. */
export function nearestKey(key: string, keys: readonly string[]): string | undefined {
  const q = key.toLowerCase();
  let best: string | undefined,
    bestD = Infinity;
  for (const k of keys) {
    const d = editDistance(q, k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return bestD <= Math.max(2, Math.ceil(q.length / 3)) ? best : undefined;
}

/**
 * Checks `opts` against a registration's declaration: every key must be a common option, a declared
 * free option of the right type and range, or a key of the variant's fixed configuration passed with
 * the very value the variant fixes. Undefined values count as absent. Throws E_ARG naming the option.
 */
export function checkOptions(id: string, opts: Record<string, unknown>, free: Readonly<Record<string, OptionSpec>>, fixed: object = {}): void {
  const specs: Record<string, OptionSpec> = { ...COMMON_OPTIONS, ...free };
  const fixedValues = fixed as Record<string, unknown>;
  for (const [key, value] of Object.entries(opts)) {
    if (value === undefined) continue;
    const spec = Object.hasOwn(specs, key) ? specs[key] : undefined;
    if (spec) {
      if (!fits(spec, value)) throw new ConvzooError(`${id}: expected ${key} to be ${describe(spec)}, got ${show(value)}`, 'E_ARG', id);
    } else if (Object.hasOwn(fixedValues, key)) {
      if (!sameValue(value, fixedValues[key])) {
        throw new ConvzooError(
          `${id}: option '${key}' is fixed by the variant (${key} = ${show(fixedValues[key])}), got ${show(value)}; ` +
            'choose the variant that has it, or construct the network class with your own configuration',
          'E_ARG',
          id,
        );
      }
    } else {
      const near = nearestKey(key, [...Object.keys(specs), ...Object.keys(fixedValues)]);
      throw new ConvzooError(
        `${id}: unknown option '${key}'${near ? `; did you mean '${near}'?` : ''} (options: ${Object.keys(specs).join(', ')})`,
        'E_ARG',
        id,
      );
    }
  }
}
