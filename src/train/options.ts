// Validation of a training run's options, the same for the library, the command line and the options
// stored in a checkpoint being resumed: every number in range, every name known, before any work.
import { ConvzooError } from '../errors.js';
import { OPTIMIZERS, SCHEDULES } from './recipe.js';
import { AUGMENTS } from './datasets.js';

/** Training precisions: float32, or bf16 autocast on channels-last tensors. */
export const PRECISIONS = ['fp32', 'bf16'] as const;

/** The smallest input size a run accepts (the CIFAR-style networks downsample 28 px images 4x). */
export const MIN_INPUT_SIZE = 8;
/** The largest input size a run accepts. */
export const MAX_INPUT_SIZE = 4096;
/** Upper bounds on machine resources, against a mistyped (or crafted) value. */
export const MAX_WORKERS = 256;
export const MAX_THREADS = 1024;

type Rule =
  | { kind: 'int'; min: number; max?: number }
  | { kind: 'num'; min: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean }
  | { kind: 'choice'; choices: readonly string[] }
  | { kind: 'string' }
  | { kind: 'bool' }
  | { kind: 'object' };

/** The rules per option; `flag` is the command line's name, used in messages. */
export const TRAIN_OPTION_RULES: Record<string, Rule & { flag: string }> = {
  model: { kind: 'string', flag: '--model' },
  data: { kind: 'string', flag: '--data' },
  out: { kind: 'string', flag: '--out' },
  resume: { kind: 'string', flag: '--resume' },
  weights: { kind: 'string', flag: '--weights' },
  epochs: { kind: 'int', min: 1, max: 1_000_000, flag: '--epochs' },
  batchSize: { kind: 'int', min: 1, max: 1_000_000, flag: '--batch-size' },
  subset: { kind: 'int', min: 1, flag: '--subset' },
  numWorkers: { kind: 'int', min: 0, max: MAX_WORKERS, flag: '--workers' },
  threads: { kind: 'int', min: 1, max: MAX_THREADS, flag: '--threads' },
  seed: { kind: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, flag: '--seed' },
  inputSize: { kind: 'int', min: MIN_INPUT_SIZE, max: MAX_INPUT_SIZE, flag: '--input-size' },
  lr: { kind: 'num', min: 0, minExclusive: true, flag: '--lr' },
  momentum: { kind: 'num', min: 0, max: 1, maxExclusive: true, flag: '--momentum' },
  weightDecay: { kind: 'num', min: 0, flag: '--weight-decay' },
  warmupEpochs: { kind: 'num', min: 0, flag: '--warmup-epochs' },
  labelSmoothing: { kind: 'num', min: 0, max: 1, maxExclusive: true, flag: '--label-smoothing' },
  valSplit: { kind: 'num', min: 0, max: 1, minExclusive: true, maxExclusive: true, flag: '--val-split' },
  auxWeight: { kind: 'num', min: 0, flag: '--aux-weight' },
  agc: { kind: 'num', min: 0, minExclusive: true, flag: '--agc' },
  ema: { kind: 'num', min: 0, max: 1, minExclusive: true, maxExclusive: true, flag: '--ema' },
  precision: { kind: 'choice', choices: PRECISIONS, flag: '--precision' },
  optimizer: { kind: 'choice', choices: OPTIMIZERS, flag: '--optimizer' },
  schedule: { kind: 'choice', choices: SCHEDULES, flag: '--schedule' },
  augment: { kind: 'choice', choices: AUGMENTS, flag: '--augment' },
  syncBn: { kind: 'bool', flag: '--sync-bn' },
  modelOptions: { kind: 'object', flag: 'modelOptions' },
};

/** "an integer >= 1", "a number > 0 and < 1": what a rule expects, for messages. */
export function describeRule(rule: Rule): string {
  switch (rule.kind) {
    case 'int':
      return `an integer >= ${rule.min}${rule.max !== undefined ? ` and <= ${rule.max}` : ''}`;
    case 'num': {
      const lo = rule.min > -Infinity ? `${rule.minExclusive ? '>' : '>='} ${rule.min}` : '';
      const hi = rule.max !== undefined ? `${rule.maxExclusive ? '<' : '<='} ${rule.max}` : '';
      return `a number${lo ? ` ${lo}` : ''}${lo && hi ? ' and' : ''}${hi ? ` ${hi}` : ''}`;
    }
    case 'choice':
      return `one of ${rule.choices.join(', ')}`;
    case 'string':
      return 'a non-empty string';
    case 'bool':
      return 'true or false';
    case 'object':
      return 'an object of architecture options';
  }
}

/** Whether `value` satisfies `rule`. */
export function satisfies(rule: Rule, value: unknown): boolean {
  switch (rule.kind) {
    case 'int':
      return Number.isSafeInteger(value) && (value as number) >= rule.min && (rule.max === undefined || (value as number) <= rule.max);
    case 'num': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return false;
      if (rule.minExclusive ? value <= rule.min : value < rule.min) return false;
      if (rule.max !== undefined && (rule.maxExclusive ? value >= rule.max : value > rule.max)) return false;
      return true;
    }
    case 'choice':
      return typeof value === 'string' && rule.choices.includes(value);
    case 'string':
      return typeof value === 'string' && value.length > 0 && !value.includes('\0');
    case 'bool':
      return typeof value === 'boolean';
    case 'object':
      return (
        typeof value === 'object' &&
        value !== null &&
        !Array.isArray(value) &&
        Object.values(value).every(
          (v) =>
            v === null ||
            ['number', 'string', 'boolean'].includes(typeof v) ||
            (Array.isArray(v) && v.every((x) => ['number', 'string', 'boolean'].includes(typeof x))),
        )
      );
  }
}

/**
 * Throws E_ARG for the first option out of range. `where` prefixes the message ('train', or
 * 'train: the checkpoint x.ckpt' for stored options). Undefined options are skipped (defaults apply).
 */
export function validateTrainOptions(o: Record<string, unknown>, where = 'train'): void {
  for (const [key, rule] of Object.entries(TRAIN_OPTION_RULES)) {
    const v = o[key];
    if (v === undefined) continue;
    if (!satisfies(rule, v)) {
      const shown = typeof v === 'string' ? `'${v}'` : typeof v === 'object' ? JSON.stringify(v) : String(v);
      throw new ConvzooError(`${where}: ${key} (${rule.flag}) must be ${describeRule(rule)}, got ${shown}`, 'E_ARG', 'train');
    }
  }
}
