// Learning-rate schedulers, with torch.optim.lr_scheduler's semantics (1.13): the constructor applies
// the value for epoch 0, and each step() moves one epoch (or one iteration: the unit is whatever the
// caller steps per) and writes the new rate into every param group's `lr`. Like torch, the epoch
// schedulers use the chainable (recursive) form, so they compose: a rate changed by someone else
// between steps is carried forward, and ChainedScheduler multiplies their effects.
//
// Their state (stateDict) is plain JSON: the counters and rates that change, not the constructor's
// arguments, which a resumed run passes again.
import { Tensor } from '../tensor/tensor.js';
import { ConvzooError, check, checkInt } from '../errors.js';
import { Optimizer, checkOptionKeys, checkRange } from './optimizer.js';

/** A scheduler's state: plain JSON (JSON.stringify-safe). */
export type SchedulerStateDict = Record<string, unknown>;

/** What every scheduler offers. ReduceLROnPlateau's step takes the metric it watches. */
export interface Scheduler {
  readonly optimizer: Optimizer;
  step(metric?: number | Tensor): void;
  /** The learning rates (one per param group) that the last step set. */
  getLastLr(): number[];
  stateDict(): SchedulerStateDict;
  loadStateDict(sd: SchedulerStateDict): void;
}

const isNumberArray = (x: unknown, n: number): x is number[] => Array.isArray(x) && x.length === n && x.every((v) => typeof v === 'number');

function perGroup(fn: string, name: string, value: number | readonly number[], groups: number): number[] {
  if (typeof value === 'number') return new Array<number>(groups).fill(value);
  check(
    Array.isArray(value) && value.length === groups,
    fn,
    `expected ${name} to be a number or ${groups} numbers (one per param group), got ${String(value)}`,
  );
  return [...value];
}

/** The base of the epoch schedulers: base rates, the epoch counter, chainable and closed forms. */
export abstract class LRScheduler implements Scheduler {
  readonly optimizer: Optimizer;
  /** The rate of each group when the first scheduler was attached (the groups' `initialLr`). */
  baseLrs: number[];
  /** The epoch of the last step(): 0 after construction. */
  lastEpoch = -1;
  /** @internal step() calls so far (the construction's included). */
  protected stepCount = 0;
  /** @internal */
  protected lastLr: number[];
  /** @internal The scheduler's name in messages. */
  protected readonly name: string;

  protected constructor(name: string, optimizer: Optimizer) {
    check(optimizer instanceof Optimizer, name, 'expected an optimizer (cz.optim.SGD, Adam, ...) as first argument');
    this.name = name;
    this.optimizer = optimizer;
    for (const g of optimizer.paramGroups) g.initialLr ??= g.lr;
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr!);
    this.lastLr = optimizer.paramGroups.map((g) => g.lr);
  }

  /** The rates for `lastEpoch`, from the groups' current rates (torch's chainable get_lr). */
  protected abstract computeLr(): number[];
  /** The rates for `lastEpoch` from the base rates alone (torch's _get_closed_form_lr). */
  protected closedFormLr(): number[] {
    return this.computeLr();
  }

  /** @internal Applies epoch 0 (every subclass constructor ends with this). */
  initialStep(): void {
    this.stepCount = 0;
    this.step();
  }

  /** Moves one epoch on and sets every group's lr. */
  step(): void {
    this.stepCount += 1;
    this.lastEpoch += 1;
    this.apply(this.computeLr());
  }

  /** @internal Jumps to `epoch` with the closed form (SequentialLR uses it when it switches schedulers). */
  stepToEpoch(epoch: number): void {
    this.stepCount += 1;
    this.lastEpoch = epoch;
    this.apply(this.closedFormLr());
  }

  private apply(lrs: number[]): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = lrs[i];
    });
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  getLastLr(): number[] {
    return [...this.lastLr];
  }

  /** @internal The group lrs as they are now. */
  protected groupLrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  stateDict(): SchedulerStateDict {
    return { lastEpoch: this.lastEpoch, stepCount: this.stepCount, baseLrs: [...this.baseLrs], lastLr: [...this.lastLr] };
  }

  loadStateDict(sd: SchedulerStateDict): void {
    const fn = `${this.name}.loadStateDict`;
    const n = this.optimizer.paramGroups.length;
    check(sd !== null && typeof sd === 'object', fn, 'expected a state dict object', 'E_STATE_DICT');
    check(Number.isInteger(sd.lastEpoch) && Number.isInteger(sd.stepCount), fn, 'expected integer lastEpoch and stepCount', 'E_STATE_DICT');
    check(
      isNumberArray(sd.baseLrs, n) && isNumberArray(sd.lastLr, n),
      fn,
      `expected baseLrs and lastLr with ${n} numbers (one per param group)`,
      'E_STATE_DICT',
    );
    this.lastEpoch = sd.lastEpoch as number;
    this.stepCount = sd.stepCount as number;
    this.baseLrs = [...(sd.baseLrs as number[])];
    this.lastLr = [...(sd.lastLr as number[])];
  }

  toString(): string {
    return `${this.name}(lastEpoch=${this.lastEpoch}, lr=[${this.lastLr.join(', ')}])`;
  }
}

/** lr = baseLr * lambda(epoch), one function for every group or one per group. */
export class LambdaLR extends LRScheduler {
  private readonly lambdas: ((epoch: number) => number)[];
  constructor(optimizer: Optimizer, lrLambda: ((epoch: number) => number) | readonly ((epoch: number) => number)[]) {
    super('LambdaLR', optimizer);
    const n = optimizer.paramGroups.length;
    this.lambdas = typeof lrLambda === 'function' ? new Array(n).fill(lrLambda) : [...lrLambda];
    check(
      this.lambdas.length === n && this.lambdas.every((f) => typeof f === 'function'),
      'LambdaLR',
      `expected a function or ${n} functions (one per param group)`,
    );
    this.initialStep();
  }
  protected computeLr(): number[] {
    return this.baseLrs.map((b, i) => b * this.lambdas[i](this.lastEpoch));
  }
}

/** Multiplies the rate by `gamma` every `stepSize` epochs (the classic step decay). */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: Optimizer, stepSize: number, opts: { gamma?: number } = {}) {
    super('StepLR', optimizer);
    checkOptionKeys('StepLR', opts, ['gamma']);
    checkInt(stepSize, 'StepLR', 'stepSize', 1);
    this.stepSize = stepSize;
    this.gamma = opts.gamma ?? 0.1;
    checkRange('StepLR', 'gamma', this.gamma, 0);
    this.initialStep();
  }
  protected computeLr(): number[] {
    const lrs = this.groupLrs();
    if (this.lastEpoch === 0 || this.lastEpoch % this.stepSize !== 0) return lrs;
    return lrs.map((lr) => lr * this.gamma);
  }
  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => b * this.gamma ** Math.floor(this.lastEpoch / this.stepSize));
  }
}

/** Multiplies the rate by `gamma` at each milestone epoch (a milestone listed twice counts twice). */
export class MultiStepLR extends LRScheduler {
  readonly milestones: number[];
  readonly gamma: number;
  private readonly counts = new Map<number, number>();
  constructor(optimizer: Optimizer, milestones: readonly number[], opts: { gamma?: number } = {}) {
    super('MultiStepLR', optimizer);
    checkOptionKeys('MultiStepLR', opts, ['gamma']);
    check(Array.isArray(milestones), 'MultiStepLR', 'expected milestones to be an array of epochs');
    for (const m of milestones) checkInt(m, 'MultiStepLR', 'every milestone', 0);
    this.milestones = [...milestones].sort((a, b) => a - b);
    for (const m of this.milestones) this.counts.set(m, (this.counts.get(m) ?? 0) + 1);
    this.gamma = opts.gamma ?? 0.1;
    checkRange('MultiStepLR', 'gamma', this.gamma, 0);
    this.initialStep();
  }
  protected computeLr(): number[] {
    const k = this.counts.get(this.lastEpoch);
    const lrs = this.groupLrs();
    return k === undefined ? lrs : lrs.map((lr) => lr * this.gamma ** k);
  }
  protected override closedFormLr(): number[] {
    const passed = this.milestones.filter((m) => m <= this.lastEpoch).length;
    return this.baseLrs.map((b) => b * this.gamma ** passed);
  }
}

/** Multiplies the rate by `factor` until epoch `totalIters`, then restores it. */
export class ConstantLR extends LRScheduler {
  readonly factor: number;
  readonly totalIters: number;
  constructor(optimizer: Optimizer, opts: { factor?: number; totalIters?: number } = {}) {
    super('ConstantLR', optimizer);
    checkOptionKeys('ConstantLR', opts, ['factor', 'totalIters']);
    this.factor = opts.factor ?? 1 / 3;
    this.totalIters = opts.totalIters ?? 5;
    check(typeof this.factor === 'number' && this.factor > 0 && this.factor <= 1, 'ConstantLR', `expected factor in (0, 1], got ${this.factor}`);
    checkInt(this.totalIters, 'ConstantLR', 'totalIters', 0);
    this.initialStep();
  }
  protected computeLr(): number[] {
    const lrs = this.groupLrs();
    if (this.lastEpoch === 0) return lrs.map((lr) => lr * this.factor);
    if (this.lastEpoch !== this.totalIters) return lrs;
    return lrs.map((lr) => lr * (1 / this.factor));
  }
  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => b * (this.factor + (this.lastEpoch >= this.totalIters ? 1 - this.factor : 0)));
  }
}

/**
 * Moves the rate's multiplier linearly from `startFactor` to `endFactor` over `totalIters` epochs, then
 * holds it: the usual warm-up (`new LinearLR(opt, {startFactor: 0.01, totalIters: 5})`).
 */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;
  constructor(optimizer: Optimizer, opts: { startFactor?: number; endFactor?: number; totalIters?: number } = {}) {
    super('LinearLR', optimizer);
    checkOptionKeys('LinearLR', opts, ['startFactor', 'endFactor', 'totalIters']);
    this.startFactor = opts.startFactor ?? 1 / 3;
    this.endFactor = opts.endFactor ?? 1;
    this.totalIters = opts.totalIters ?? 5;
    check(
      typeof this.startFactor === 'number' && this.startFactor > 0 && this.startFactor <= 1,
      'LinearLR',
      `expected startFactor in (0, 1], got ${this.startFactor}`,
    );
    check(typeof this.endFactor === 'number' && this.endFactor >= 0 && this.endFactor <= 1, 'LinearLR', `expected endFactor in [0, 1], got ${this.endFactor}`);
    checkInt(this.totalIters, 'LinearLR', 'totalIters', 1);
    this.initialStep();
  }
  protected computeLr(): number[] {
    const lrs = this.groupLrs();
    if (this.lastEpoch === 0) return lrs.map((lr) => lr * this.startFactor);
    if (this.lastEpoch > this.totalIters) return lrs;
    const d = this.endFactor - this.startFactor;
    const ratio = 1 + d / (this.totalIters * this.startFactor + (this.lastEpoch - 1) * d);
    return lrs.map((lr) => lr * ratio);
  }
  protected override closedFormLr(): number[] {
    const f = this.startFactor + ((this.endFactor - this.startFactor) * Math.min(this.totalIters, this.lastEpoch)) / this.totalIters;
    return this.baseLrs.map((b) => b * f);
  }
}

/** Multiplies the rate by `gamma` every epoch. */
export class ExponentialLR extends LRScheduler {
  readonly gamma: number;
  constructor(optimizer: Optimizer, gamma: number) {
    super('ExponentialLR', optimizer);
    checkRange('ExponentialLR', 'gamma', gamma, 0);
    this.gamma = gamma;
    this.initialStep();
  }
  protected computeLr(): number[] {
    const lrs = this.groupLrs();
    return this.lastEpoch === 0 ? lrs : lrs.map((lr) => lr * this.gamma);
  }
  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => b * this.gamma ** this.lastEpoch);
  }
}

/** Decays the rate to 0 over `totalIters` epochs as (1 - epoch / totalIters) ** power. */
export class PolynomialLR extends LRScheduler {
  readonly totalIters: number;
  readonly power: number;
  constructor(optimizer: Optimizer, opts: { totalIters?: number; power?: number } = {}) {
    super('PolynomialLR', optimizer);
    checkOptionKeys('PolynomialLR', opts, ['totalIters', 'power']);
    this.totalIters = opts.totalIters ?? 5;
    this.power = opts.power ?? 1;
    checkInt(this.totalIters, 'PolynomialLR', 'totalIters', 1);
    checkRange('PolynomialLR', 'power', this.power, 0);
    this.initialStep();
  }
  protected computeLr(): number[] {
    const lrs = this.groupLrs();
    if (this.lastEpoch === 0 || this.lastEpoch > this.totalIters) return lrs;
    const f = ((1 - this.lastEpoch / this.totalIters) / (1 - (this.lastEpoch - 1) / this.totalIters)) ** this.power;
    return lrs.map((lr) => lr * f);
  }
  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => b * (1 - Math.min(this.totalIters, this.lastEpoch) / this.totalIters) ** this.power);
  }
}

/**
 * Cosine annealing from the base rate to `etaMin` over `tMax` epochs (SGDR without restarts):
 * lr = etaMin + (base - etaMin) * (1 + cos(pi * epoch / tMax)) / 2. Past tMax it rises again, as torch's does.
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;
  constructor(optimizer: Optimizer, tMax: number, opts: { etaMin?: number } = {}) {
    super('CosineAnnealingLR', optimizer);
    checkOptionKeys('CosineAnnealingLR', opts, ['etaMin']);
    checkInt(tMax, 'CosineAnnealingLR', 'tMax', 1);
    this.tMax = tMax;
    this.etaMin = opts.etaMin ?? 0;
    checkRange('CosineAnnealingLR', 'etaMin', this.etaMin, 0);
    this.initialStep();
  }
  protected computeLr(): number[] {
    const e = this.lastEpoch,
      T = this.tMax,
      etaMin = this.etaMin;
    const lrs = this.groupLrs();
    if (e === 0) return lrs;
    if (this.stepCount === 1 && e > 0) return this.closedFormLr();
    if ((e - 1 - T) % (2 * T) === 0) {
      // The trough: the ratio below would divide by zero, so step up from it directly.
      return lrs.map((lr, i) => lr + ((this.baseLrs[i] - etaMin) * (1 - Math.cos(Math.PI / T))) / 2);
    }
    const ratio = (1 + Math.cos((Math.PI * e) / T)) / (1 + Math.cos((Math.PI * (e - 1)) / T));
    return lrs.map((lr) => ratio * (lr - etaMin) + etaMin);
  }
  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => this.etaMin + ((b - this.etaMin) * (1 + Math.cos((Math.PI * this.lastEpoch) / this.tMax))) / 2);
  }
}

export interface OneCycleLROptions {
  /** The number of step() calls in the cycle; or give epochs and stepsPerEpoch. */
  totalSteps?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  /** Fraction of the cycle spent raising the rate (default 0.3). */
  pctStart?: number;
  annealStrategy?: 'cos' | 'linear';
  /** Cycle momentum (SGD's momentum or Adam's beta1) inversely to the rate (default true). */
  cycleMomentum?: boolean;
  baseMomentum?: number | readonly number[];
  maxMomentum?: number | readonly number[];
  /** The starting rate is maxLr / divFactor (default 25). */
  divFactor?: number;
  /** The final rate is the starting rate / finalDivFactor (default 1e4). */
  finalDivFactor?: number;
  /** Three phases (up, down to the start, annihilation) instead of two (fast.ai's variant). */
  threePhase?: boolean;
}

interface Phase {
  endStep: number;
  startLr: number[];
  endLr: number[];
  startMomentum: number[];
  endMomentum: number[];
}

/**
 * The 1cycle policy (Smith & Topin): the rate rises from maxLr/divFactor to maxLr, then anneals far
 * below the start, while momentum moves the opposite way. Step it once per batch; it sets each group's
 * `initialLr` (and momentum or betas[0]) when constructed, as torch's does.
 */
export class OneCycleLR extends LRScheduler {
  readonly totalSteps: number;
  private readonly phases: Phase[];
  private readonly anneal: (start: number, end: number, pct: number) => number;
  private readonly cycleMomentum: boolean;
  private readonly useBeta1: boolean;

  constructor(optimizer: Optimizer, maxLr: number | readonly number[], opts: OneCycleLROptions = {}) {
    const fn = 'OneCycleLR';
    check(optimizer instanceof Optimizer, fn, 'expected an optimizer (cz.optim.SGD, Adam, ...) as first argument');
    checkOptionKeys(fn, opts, [
      'totalSteps',
      'epochs',
      'stepsPerEpoch',
      'pctStart',
      'annealStrategy',
      'cycleMomentum',
      'baseMomentum',
      'maxMomentum',
      'divFactor',
      'finalDivFactor',
      'threePhase',
    ]);
    let total: number;
    if (opts.totalSteps !== undefined) {
      checkInt(opts.totalSteps, fn, 'totalSteps', 1);
      total = opts.totalSteps;
    } else {
      check(opts.epochs !== undefined && opts.stepsPerEpoch !== undefined, fn, 'give totalSteps, or epochs and stepsPerEpoch');
      checkInt(opts.epochs, fn, 'epochs', 1);
      checkInt(opts.stepsPerEpoch, fn, 'stepsPerEpoch', 1);
      total = opts.epochs * opts.stepsPerEpoch;
    }
    const pct = opts.pctStart ?? 0.3;
    check(typeof pct === 'number' && pct >= 0 && pct <= 1, fn, `expected pctStart in [0, 1], got ${String(pct)}`);
    const strategy = opts.annealStrategy ?? 'cos';
    check(strategy === 'cos' || strategy === 'linear', fn, `expected annealStrategy 'cos' or 'linear', got '${String(strategy)}'`);
    const divFactor = opts.divFactor ?? 25;
    const finalDivFactor = opts.finalDivFactor ?? 1e4;
    checkRange(fn, 'divFactor', divFactor, Number.MIN_VALUE);
    checkRange(fn, 'finalDivFactor', finalDivFactor, Number.MIN_VALUE);
    const groups = optimizer.paramGroups;
    const maxLrs = perGroup(fn, 'maxLr', maxLr, groups.length);
    const initialLrs = maxLrs.map((m) => m / divFactor);
    const minLrs = initialLrs.map((l) => l / finalDivFactor);
    groups.forEach((g, i) => {
      g.initialLr = initialLrs[i];
    });

    const cycleMomentum = opts.cycleMomentum ?? true;
    const useBeta1 = 'betas' in optimizer.defaults;
    let maxMomentums: number[] = [],
      baseMomentums: number[] = [];
    if (cycleMomentum) {
      check(useBeta1 || 'momentum' in optimizer.defaults, fn, 'cycleMomentum needs an optimizer with momentum or betas (or pass cycleMomentum: false)');
      maxMomentums = perGroup(fn, 'maxMomentum', opts.maxMomentum ?? 0.95, groups.length);
      baseMomentums = perGroup(fn, 'baseMomentum', opts.baseMomentum ?? 0.85, groups.length);
    }

    super(fn, optimizer);
    this.totalSteps = total;
    this.cycleMomentum = cycleMomentum;
    this.useBeta1 = useBeta1;
    this.anneal =
      strategy === 'cos' ? (start, end, p) => end + ((start - end) / 2) * (Math.cos(Math.PI * p) + 1) : (start, end, p) => (end - start) * p + start;
    const up = { startLr: initialLrs, endLr: maxLrs, startMomentum: maxMomentums, endMomentum: baseMomentums };
    this.phases = opts.threePhase
      ? [
          { endStep: pct * total - 1, ...up },
          { endStep: 2 * pct * total - 2, startLr: maxLrs, endLr: initialLrs, startMomentum: baseMomentums, endMomentum: maxMomentums },
          { endStep: total - 1, startLr: initialLrs, endLr: minLrs, startMomentum: maxMomentums, endMomentum: maxMomentums },
        ]
      : [
          { endStep: pct * total - 1, ...up },
          { endStep: total - 1, startLr: maxLrs, endLr: minLrs, startMomentum: baseMomentums, endMomentum: maxMomentums },
        ];
    if (cycleMomentum) this.setMomentum(maxMomentums);
    this.initialStep();
  }

  private setMomentum(values: number[]): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      const h = g as unknown as { betas?: [number, number]; momentum?: number };
      if (this.useBeta1) h.betas = [values[i], h.betas![1]];
      else h.momentum = values[i];
    });
  }

  protected computeLr(): number[] {
    const stepNum = this.lastEpoch;
    if (stepNum > this.totalSteps) {
      throw new ConvzooError(`OneCycleLR: tried to step ${stepNum + 1} times; the cycle has ${this.totalSteps} steps`, 'E_ARG', 'OneCycleLR');
    }
    let start = 0;
    for (const [k, ph] of this.phases.entries()) {
      if (stepNum <= ph.endStep || k === this.phases.length - 1) {
        const p = (stepNum - start) / (ph.endStep - start);
        if (this.cycleMomentum) this.setMomentum(ph.startMomentum.map((m, i) => this.anneal(m, ph.endMomentum[i], p)));
        return ph.startLr.map((s, i) => this.anneal(s, ph.endLr[i], p));
      }
      start = ph.endStep;
    }
    throw new Error('unreachable');
  }
}

/**
 * Runs `schedulers` one after another, switching at each milestone epoch (torch's SequentialLR):
 * `new SequentialLR(opt, [new LinearLR(opt, {startFactor: 0.1, totalIters: 5}), new CosineAnnealingLR(opt, 95)], [5])`.
 * The scheduler taken over at a milestone starts from its epoch 0.
 */
export class SequentialLR implements Scheduler {
  readonly optimizer: Optimizer;
  lastEpoch: number;
  private readonly schedulers: LRScheduler[];
  private readonly milestones: number[];
  private lastLr: number[];

  constructor(optimizer: Optimizer, schedulers: readonly LRScheduler[], milestones: readonly number[]) {
    const fn = 'SequentialLR';
    check(optimizer instanceof Optimizer, fn, 'expected an optimizer as first argument');
    check(Array.isArray(schedulers) && schedulers.length > 0, fn, 'expected a non-empty array of schedulers');
    schedulers.forEach((s, i) => {
      check(s instanceof LRScheduler, fn, `scheduler ${i} is not an epoch scheduler (ReduceLROnPlateau and nested SequentialLR are not supported)`);
      check(s.optimizer === optimizer, fn, `scheduler ${i} belongs to another optimizer`);
    });
    check(
      Array.isArray(milestones) && milestones.length === schedulers.length - 1,
      fn,
      `expected ${schedulers.length - 1} milestones (one fewer than the schedulers), got ${Array.isArray(milestones) ? milestones.length : String(milestones)}`,
    );
    milestones.forEach((m, i) => {
      checkInt(m, fn, 'every milestone', 1);
      check(i === 0 || m > milestones[i - 1], fn, 'expected increasing milestones');
    });
    this.optimizer = optimizer;
    this.schedulers = [...schedulers];
    this.milestones = [...milestones];
    this.lastEpoch = 0;
    // Each scheduler applied its epoch 0 when built: undo that, then apply the first one's epoch 0.
    for (const g of optimizer.paramGroups) g.lr = g.initialLr!;
    for (const s of this.schedulers) s.lastEpoch -= 1;
    this.schedulers[0].initialStep();
    this.lastLr = this.schedulers[0].getLastLr();
  }

  step(): void {
    this.lastEpoch += 1;
    const idx = this.milestones.filter((m) => m <= this.lastEpoch).length;
    const s = this.schedulers[idx];
    if (idx > 0 && this.milestones[idx - 1] === this.lastEpoch) s.stepToEpoch(0);
    else s.step();
    this.lastLr = s.getLastLr();
  }

  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): SchedulerStateDict {
    return { lastEpoch: this.lastEpoch, lastLr: [...this.lastLr], schedulers: this.schedulers.map((s) => s.stateDict()) };
  }

  loadStateDict(sd: SchedulerStateDict): void {
    const fn = 'SequentialLR.loadStateDict';
    check(sd !== null && typeof sd === 'object' && Number.isInteger(sd.lastEpoch), fn, 'expected an integer lastEpoch', 'E_STATE_DICT');
    check(
      Array.isArray(sd.schedulers) && sd.schedulers.length === this.schedulers.length,
      fn,
      `expected ${this.schedulers.length} scheduler states`,
      'E_STATE_DICT',
    );
    check(isNumberArray(sd.lastLr, this.optimizer.paramGroups.length), fn, 'expected lastLr with one number per param group', 'E_STATE_DICT');
    (sd.schedulers as SchedulerStateDict[]).forEach((s, i) => this.schedulers[i].loadStateDict(s));
    this.lastEpoch = sd.lastEpoch as number;
    this.lastLr = [...(sd.lastLr as number[])];
  }
}

/** Steps several schedulers together, so that their (chainable) effects multiply (torch's ChainedScheduler). */
export class ChainedScheduler implements Scheduler {
  readonly optimizer: Optimizer;
  private readonly schedulers: LRScheduler[];
  private lastLr: number[];

  constructor(schedulers: readonly LRScheduler[]) {
    const fn = 'ChainedScheduler';
    check(Array.isArray(schedulers) && schedulers.length > 0, fn, 'expected a non-empty array of schedulers');
    schedulers.forEach((s, i) => {
      check(s instanceof LRScheduler, fn, `scheduler ${i} is not an epoch scheduler`);
      check(s.optimizer === schedulers[0].optimizer, fn, `scheduler ${i} belongs to another optimizer than scheduler 0`);
    });
    this.schedulers = [...schedulers];
    this.optimizer = schedulers[0].optimizer;
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  step(): void {
    for (const s of this.schedulers) s.step();
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): SchedulerStateDict {
    return { lastLr: [...this.lastLr], schedulers: this.schedulers.map((s) => s.stateDict()) };
  }

  loadStateDict(sd: SchedulerStateDict): void {
    const fn = 'ChainedScheduler.loadStateDict';
    check(
      sd !== null && typeof sd === 'object' && Array.isArray(sd.schedulers) && sd.schedulers.length === this.schedulers.length,
      fn,
      `expected ${this.schedulers.length} scheduler states`,
      'E_STATE_DICT',
    );
    check(isNumberArray(sd.lastLr, this.optimizer.paramGroups.length), fn, 'expected lastLr with one number per param group', 'E_STATE_DICT');
    (sd.schedulers as SchedulerStateDict[]).forEach((s, i) => this.schedulers[i].loadStateDict(s));
    this.lastLr = [...(sd.lastLr as number[])];
  }
}

export interface ReduceLROnPlateauOptions {
  /** 'min': the metric should fall (a loss, an error rate); 'max': it should rise (accuracy). Default 'min'. */
  mode?: 'min' | 'max';
  /** The rate is multiplied by factor (< 1) on a plateau. Default 0.1. */
  factor?: number;
  /** Epochs without improvement tolerated before reducing. Default 10. */
  patience?: number;
  /** How much better counts as better. Default 1e-4. */
  threshold?: number;
  /** 'rel': better than best * (1 -/+ threshold); 'abs': better than best -/+ threshold. Default 'rel'. */
  thresholdMode?: 'rel' | 'abs';
  /** Epochs to wait after a reduction before counting bad epochs again. Default 0. */
  cooldown?: number;
  /** A floor for the rate, one for all groups or one per group. Default 0. */
  minLr?: number | readonly number[];
  /** Reductions smaller than eps are skipped. Default 1e-8. */
  eps?: number;
}

/**
 * Reduces the rate by `factor` when a metric has stopped improving for more than `patience` epochs:
 * AlexNet's "divide by 10 when the validation error stops improving". Call `step(metric)` once per
 * evaluation.
 */
export class ReduceLROnPlateau implements Scheduler {
  readonly optimizer: Optimizer;
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  readonly minLrs: number[];
  readonly eps: number;
  /** The best metric so far (Infinity / -Infinity before the first step). */
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;
  lastEpoch = 0;
  private lastLr: number[];

  constructor(optimizer: Optimizer, opts: ReduceLROnPlateauOptions = {}) {
    const fn = 'ReduceLROnPlateau';
    check(optimizer instanceof Optimizer, fn, 'expected an optimizer as first argument');
    checkOptionKeys(fn, opts, ['mode', 'factor', 'patience', 'threshold', 'thresholdMode', 'cooldown', 'minLr', 'eps']);
    this.optimizer = optimizer;
    this.mode = opts.mode ?? 'min';
    check(this.mode === 'min' || this.mode === 'max', fn, `expected mode 'min' or 'max', got '${String(this.mode)}'`);
    this.factor = opts.factor ?? 0.1;
    check(typeof this.factor === 'number' && this.factor >= 0 && this.factor < 1, fn, `expected factor in [0, 1), got ${String(this.factor)}`);
    this.patience = opts.patience ?? 10;
    checkInt(this.patience, fn, 'patience', 0);
    this.threshold = opts.threshold ?? 1e-4;
    checkRange(fn, 'threshold', this.threshold, 0);
    this.thresholdMode = opts.thresholdMode ?? 'rel';
    check(this.thresholdMode === 'rel' || this.thresholdMode === 'abs', fn, `expected thresholdMode 'rel' or 'abs', got '${String(this.thresholdMode)}'`);
    this.cooldown = opts.cooldown ?? 0;
    checkInt(this.cooldown, fn, 'cooldown', 0);
    this.minLrs = perGroup(fn, 'minLr', opts.minLr ?? 0, optimizer.paramGroups.length);
    this.eps = opts.eps ?? 1e-8;
    checkRange(fn, 'eps', this.eps, 0);
    this.best = this.worst();
    this.lastLr = optimizer.paramGroups.map((g) => g.lr);
  }

  private worst(): number {
    return this.mode === 'min' ? Infinity : -Infinity;
  }

  private isBetter(a: number, best: number): boolean {
    if (this.mode === 'min') return this.thresholdMode === 'rel' ? a < best * (1 - this.threshold) : a < best - this.threshold;
    return this.thresholdMode === 'rel' ? a > best * (this.threshold + 1) : a > best + this.threshold;
  }

  get inCooldown(): boolean {
    return this.cooldownCounter > 0;
  }

  /** Records one evaluation of the watched metric (a number or a one-element tensor). */
  step(metric?: number | Tensor): void {
    const current = metric instanceof Tensor ? metric.item() : metric;
    check(typeof current === 'number' && !Number.isNaN(current), 'ReduceLROnPlateau.step', `expected the metric as a number, got ${String(metric)}`);
    this.lastEpoch += 1;
    if (this.isBetter(current, this.best)) {
      this.best = current;
      this.numBadEpochs = 0;
    } else {
      this.numBadEpochs += 1;
    }
    if (this.inCooldown) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0; // bad epochs in cooldown do not count
    }
    if (this.numBadEpochs > this.patience) {
      this.optimizer.paramGroups.forEach((g, i) => {
        const next = Math.max(g.lr * this.factor, this.minLrs[i]);
        if (g.lr - next > this.eps) g.lr = next;
      });
      this.cooldownCounter = this.cooldown;
      this.numBadEpochs = 0;
    }
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  getLastLr(): number[] {
    return [...this.lastLr];
  }

  /** `best` is null until a metric was seen (JSON has no Infinity). */
  stateDict(): SchedulerStateDict {
    return {
      best: Number.isFinite(this.best) ? this.best : null,
      numBadEpochs: this.numBadEpochs,
      cooldownCounter: this.cooldownCounter,
      lastEpoch: this.lastEpoch,
      lastLr: [...this.lastLr],
    };
  }

  loadStateDict(sd: SchedulerStateDict): void {
    const fn = 'ReduceLROnPlateau.loadStateDict';
    check(sd !== null && typeof sd === 'object', fn, 'expected a state dict object', 'E_STATE_DICT');
    check(sd.best === null || typeof sd.best === 'number', fn, 'expected best to be a number or null', 'E_STATE_DICT');
    for (const k of ['numBadEpochs', 'cooldownCounter', 'lastEpoch']) check(Number.isInteger(sd[k]), fn, `expected an integer ${k}`, 'E_STATE_DICT');
    check(isNumberArray(sd.lastLr, this.optimizer.paramGroups.length), fn, 'expected lastLr with one number per param group', 'E_STATE_DICT');
    this.best = sd.best === null ? this.worst() : (sd.best as number);
    this.numBadEpochs = sd.numBadEpochs as number;
    this.cooldownCounter = sd.cooldownCounter as number;
    this.lastEpoch = sd.lastEpoch as number;
    this.lastLr = [...(sd.lastLr as number[])];
  }
}
