// cz.optim: SGD, Adam, AdamW, RMSprop (torch and TensorFlow style) against torch.optim 1.13 step by
// step, their state dicts (resuming continues identically), and the LR schedulers against
// torch.optim.lr_scheduler's sequences. Reference values come from tools/optim_reference.py.
import { describe, test, expect, beforeAll, beforeEach, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';

const PY = '/usr/bin/python3';
const { optim, nn, F } = cz;

type Opts = Record<string, unknown>;
interface OptimizerRef {
  name: string;
  kind: 'SGD' | 'Adam' | 'AdamW' | 'RMSprop';
  opts: Opts;
  groups: ({ params: number[] } & Opts)[] | null;
  init: number[][];
  grads: (number[] | null)[][];
  after: number[][][];
}
interface SchedCfg {
  kind: string;
  args: unknown[];
  opts: Opts;
  schedulers?: SchedCfg[];
  milestones?: number[];
}
interface SchedulerRef extends SchedCfg {
  name: string;
  steps?: number;
  metrics?: number[];
  optimizer: { kind: OptimizerRef['kind']; opts: Opts };
  lrs: number[][];
  momentum?: number[][];
}
interface Reference {
  shapes: number[][];
  steps: number;
  groupLrs: (number | null)[];
  optimizers: OptimizerRef[];
  schedulers: SchedulerRef[];
}

let ref: Reference;
beforeAll(() => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cz-optim-'));
  try {
    const out = path.join(dir, 'optim_reference.json');
    execFileSync(PY, [fileURLToPath(new URL('../tools/optim_reference.py', import.meta.url)), out], { stdio: ['ignore', 'ignore', 'inherit'] });
    ref = JSON.parse(readFileSync(out, 'utf8')) as Reference;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

let live = 0;
beforeEach(() => {
  live = cz.memory().tensors;
});
afterEach(() => {
  expect(cz.memory().tensors, 'tensors leaked by this test').toBe(live);
});

// ---- helpers
/** Parameters (kept: the caller disposes them) from flat values. */
function makeParams(values: number[][], shapes: number[][]): cz.nn.Parameter[] {
  return values.map((v, i) => cz.tidy(() => new nn.Parameter(cz.tensor(Float32Array.from(v), shapes[i]))));
}

function makeOptimizer(kind: OptimizerRef['kind'], params: Tensor[], opts: Opts, groups: OptimizerRef['groups']): cz.optim.Optimizer<any> {
  const input = groups === null ? params : groups.map(({ params: idx, ...o }) => ({ params: idx.map((i) => params[i]), ...o }));
  const Ctor = { SGD: optim.SGD, Adam: optim.Adam, AdamW: optim.AdamW, RMSprop: optim.RMSprop }[kind] as unknown as new (
    p: unknown,
    o: Opts,
  ) => cz.optim.Optimizer<any>;
  return new Ctor(input, opts);
}

function setGrads(params: Tensor[], grads: (number[] | null)[], shapes: number[][]): void {
  cz.tidy(() =>
    params.forEach((p, i) => {
      const g = grads[i];
      p.grad = g === null ? null : cz.tensor(Float32Array.from(g), shapes[i]);
    }),
  );
}

/** max |a - b| / (|b| + atol) over all values. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>, atol: number): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + atol));
  return worst;
}

const values = (params: Tensor[]): number[][] => params.map((p) => Array.from(p.data() as Float32Array));
const disposeAll = (ts: Iterable<Tensor>): void => {
  for (const t of ts) t.dispose();
};

describe('optimizers match torch.optim step by step', () => {
  test('every config, every step, to 1e-6 relative', () => {
    const shapes = ref.shapes;
    const report: string[] = [];
    for (const cfg of ref.optimizers) {
      const params = makeParams(cfg.init, shapes);
      const opt = makeOptimizer(cfg.kind, params, cfg.opts, cfg.groups);
      let worst = 0;
      for (let s = 0; s < ref.steps; s++) {
        setGrads(params, cfg.grads[s], shapes);
        opt.step();
        values(params).forEach((v, i) => {
          worst = Math.max(worst, relErr(v, cfg.after[s][i], 1e-6));
        });
      }
      report.push(`${cfg.name}: ${worst.toExponential(2)}`);
      expect(worst, `${cfg.name}: worst relative error`).toBeLessThan(1e-6);
      opt.dispose();
      disposeAll(params);
    }
    // A sanity check that the configs differ (the reference really exercises each option).
    const finals = new Set(ref.optimizers.map((c) => c.after[ref.steps - 1][0][0].toFixed(7)));
    expect(finals.size).toBe(ref.optimizers.length);
  });

  test('a parameter without a gradient is skipped and gets no state until it has one', () => {
    const cfg = ref.optimizers.find((c) => c.name === 'adam')!;
    const params = makeParams(cfg.init, ref.shapes);
    const opt = makeOptimizer(cfg.kind, params, cfg.opts, cfg.groups);
    setGrads(params, cfg.grads[0], ref.shapes); // parameter 2 has none at step 0
    opt.step();
    expect(values(params)[2]).toEqual(cfg.init[2].map((v) => Math.fround(v)));
    const sd = opt.stateDict();
    expect(Object.keys(sd.state).sort()).toEqual(['0.exp_avg', '0.exp_avg_sq', '0.step', '1.exp_avg', '1.exp_avg_sq', '1.step']);
    expect(sd.state['0.step'].item()).toBe(1);
    disposeAll(Object.values(sd.state));
    opt.dispose();
    disposeAll(params);
  });
});

describe('optimizer state dicts', () => {
  test('save after 3 steps, load into a fresh optimizer: the next steps are identical (every config)', () => {
    const shapes = ref.shapes;
    const cut = 3;
    for (const cfg of ref.optimizers) {
      const params = makeParams(cfg.init, shapes);
      const opt = makeOptimizer(cfg.kind, params, cfg.opts, cfg.groups);
      for (let s = 0; s < cut; s++) {
        setGrads(params, cfg.grads[s], shapes);
        opt.step();
      }
      // Snapshot as a checkpoint would: tensors cloned, groups through JSON.
      const sd = opt.stateDict();
      const saved: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(sd.state)) {
        saved[k] = cz.tidy(() => t.clone());
        t.dispose();
      }
      const groups = JSON.parse(JSON.stringify(sd.groups));
      const snapshot = values(params);
      for (let s = cut; s < ref.steps; s++) {
        setGrads(params, cfg.grads[s], shapes);
        opt.step();
      }
      const expected = values(params);

      const params2 = makeParams(snapshot, shapes);
      const opt2 = makeOptimizer(cfg.kind, params2, cfg.opts, cfg.groups);
      opt2.loadStateDict({ state: saved, groups });
      disposeAll(Object.values(saved)); // the optimizer copied them
      for (let s = cut; s < ref.steps; s++) {
        setGrads(params2, cfg.grads[s], shapes);
        opt2.step();
      }
      expect(values(params2), cfg.name).toEqual(expected);

      // Without the state, the continuation differs (the test above is not vacuous).
      if (cfg.kind !== 'SGD' || cfg.opts.momentum) {
        const params3 = makeParams(snapshot, shapes);
        const opt3 = makeOptimizer(cfg.kind, params3, cfg.opts, cfg.groups);
        for (let s = cut; s < ref.steps; s++) {
          setGrads(params3, cfg.grads[s], shapes);
          opt3.step();
        }
        expect(values(params3), cfg.name).not.toEqual(expected);
        opt3.dispose();
        disposeAll(params3);
      }
      opt.dispose();
      opt2.dispose();
      disposeAll(params);
      disposeAll(params2);
    }
  });

  test('layout: flat `<index>.<buffer>` keys, JSON groups with hyperparameters and indices; lr is restored', () => {
    const params = makeParams([[1, 2], [3]], [[2], [1]]);
    const opt = new optim.SGD([{ params: [params[0]] }, { params: [params[1]], lr: 0.5 }], { lr: 0.1, momentum: 0.9 });
    setGrads(params, [[1, 1], [1]], [[2], [1]]);
    opt.step();
    opt.paramGroups[0].lr = 0.05; // as a scheduler would
    const sd = opt.stateDict();
    expect(Object.keys(sd.state).sort()).toEqual(['0.momentum_buffer', '0.step', '1.momentum_buffer', '1.step']);
    expect(sd.groups).toEqual([
      { lr: 0.05, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0, params: [0] },
      { lr: 0.5, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0, params: [1] },
    ]);
    const opt2 = new optim.SGD([{ params: [params[0]] }, { params: [params[1]], lr: 0.5 }], { lr: 0.1, momentum: 0.9 });
    opt2.loadStateDict(sd);
    expect(opt2.paramGroups[0].lr).toBe(0.05);
    // Loading copied the buffers: changing the state dict's tensors does not reach opt2.
    cz.noGrad(() => sd.state['0.momentum_buffer'].fill_(100));
    const sd2 = opt2.stateDict();
    expect(sd2.state['0.momentum_buffer'].toArray()).toEqual([1, 1]);
    disposeAll(Object.values(sd.state));
    disposeAll(Object.values(sd2.state));
    opt.dispose();
    opt2.dispose();
    disposeAll(params);
  });

  test('mismatched state dicts are refused before anything changes (E_STATE_DICT)', () => {
    const params = makeParams([[1, 2], [3]], [[2], [1]]);
    const opt = new optim.Adam(params, { lr: 0.1 });
    setGrads(params, [[1, 1], [1]], [[2], [1]]);
    opt.step();
    const sd = opt.stateDict();
    const other = makeParams([[1, 2, 3], [3]], [[3], [1]]);
    const fresh = new optim.Adam(other, { lr: 0.1 });
    expect(() => fresh.loadStateDict(sd)).toThrow(/shape \[2\], its parameter \[3\]/);
    try {
      fresh.loadStateDict(sd);
    } catch (e) {
      expect((e as cz.ConvzooError).code).toBe('E_STATE_DICT');
    }
    const grouped = new optim.Adam([{ params: [params[0]] }, { params: [params[1]] }]);
    expect(() => grouped.loadStateDict(sd)).toThrow(/1 parameter groups, this optimizer 2/);
    expect(() => opt.loadStateDict({ state: { '7.exp_avg': sd.state['0.exp_avg'] }, groups: sd.groups })).toThrow(/names no parameter/);
    expect(() => opt.loadStateDict({ state: {}, groups: [{ ...sd.groups[0], lr: -1 }] })).toThrow(/lr/);
    expect(() => opt.loadStateDict({ state: {}, groups: [{ ...sd.groups[0], momentum: 0.9 }] })).toThrow(/unknown hyperparameters: momentum/);
    // Nothing changed: opt still has its state.
    const again = opt.stateDict();
    expect(Object.keys(again.state).length).toBe(6);
    disposeAll(Object.values(sd.state));
    disposeAll(Object.values(again.state));
    opt.dispose();
    fresh.dispose();
    grouped.dispose();
    disposeAll(params);
    disposeAll(other);
  });
});

describe('optimizer API', () => {
  test('step pre-hooks run before the update, in order, until removed', () => {
    const [p] = makeParams([[2]], [[1]]);
    cz.tidy(() => {
      p.grad = cz.tensor(Float32Array.from([1]), [1]); // the gradient is p's; the wrappers go with the scope
    });
    const opt = new optim.SGD([p], { lr: 0.5 });
    const seen: number[] = [];
    const first = opt.registerStepPreHook((o) => {
      expect(o).toBe(opt);
      seen.push(p.item()); // the parameter before this step's update
    });
    // A hook may change the gradient the update uses.
    opt.registerStepPreHook(() => cz.tidy(() => void (p.grad = p.grad!.mul(2))));
    opt.step();
    expect(seen).toEqual([2]);
    expect(p.item()).toBe(1); // 2 - 0.5 * (2 * 1)
    first.remove();
    opt.step();
    expect(seen).toEqual([2]);
    expect(p.item()).toBe(-1); // 1 - 0.5 * (2 * 2): the doubling hook is still there
    expect(() => opt.registerStepPreHook(null as never)).toThrow(/function/);
    p.grad = null;
    disposeAll([p]);
  });
  test('options are checked: unknown keys, ranges, nesterov, duplicates, empty lists', () => {
    const [p, q] = makeParams([[1], [2]], [[1], [1]]);
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (e) {
        return (e as cz.ConvzooError).code;
      }
      return undefined;
    };
    expect(() => new optim.SGD([p], { lr: 0.1, momentun: 0.9 } as never)).toThrow(/unknown option 'momentun'/);
    expect(code(() => new optim.SGD([p], { lr: 0.1, momentun: 0.9 } as never))).toBe('E_ARG');
    expect(() => new optim.SGD([p], {} as never)).toThrow(/lr/);
    expect(() => new optim.SGD([p], { lr: -1 })).toThrow(/lr to be a number >= 0/);
    expect(() => new optim.SGD([p], { lr: 0.1, nesterov: true })).toThrow(/nesterov/);
    expect(() => new optim.SGD([p, p], { lr: 0.1 })).toThrow(/already appears/);
    expect(() => new optim.SGD([{ params: [p] }, { params: [p] }], { lr: 0.1 })).toThrow(/already appears/);
    expect(() => new optim.SGD([], { lr: 0.1 })).toThrow(/empty/);
    expect(() => new optim.Adam([p], { betas: [0.9, 1] })).toThrow(/betas\[1\]/);
    expect(() => new optim.AdamW([{ params: [p], lrr: 1 } as never])).toThrow(/unknown option 'lrr'/);
    expect(() => new optim.RMSprop([p], { epsInsideSqrt: true } as never)).toThrow(/unknown option/);
    const adamw = new optim.AdamW([p, q]);
    expect(adamw.defaults).toEqual({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false });
    expect(new optim.Adam([p]).defaults.weightDecay).toBe(0);
    expect(new optim.RMSprop([p]).defaults).toEqual({ lr: 1e-2, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false, tfStyle: false });
    expect(String(adamw)).toContain('AdamW(');
    // A group's betas is its own copy (changing one group's does not change the defaults).
    adamw.paramGroups[0].betas[0] = 0.5;
    expect(adamw.defaults.betas[0]).toBe(0.9);
    disposeAll([p, q]);
  });

  test('addParamGroup, zeroGrad (to none, or zeros in place)', () => {
    const [p, q] = makeParams([[1, 2], [3]], [[2], [1]]);
    const opt = new optim.SGD([p], { lr: 0.1, momentum: 0.9 });
    opt.addParamGroup({ params: [q], lr: 0.01 });
    expect(opt.paramGroups.map((g) => [g.lr, g.momentum])).toEqual([
      [0.1, 0.9],
      [0.01, 0.9],
    ]);
    expect(() => opt.addParamGroup({ params: [q] })).toThrow(/already appears/);
    setGrads([p, q], [[1, 1], [2]], [[2], [1]]);
    opt.zeroGrad({ setToNone: false });
    cz.tidy(() => expect(p.grad!.toArray()).toEqual([0, 0]));
    opt.zeroGrad();
    expect(cz.tidy(() => p.grad)).toBeNull();
    expect(cz.tidy(() => q.grad)).toBeNull();
    opt.dispose();
    disposeAll([p, q]);
  });

  test('step() validates groups changed by hand', () => {
    const [p] = makeParams([[1]], [[1]]);
    const opt = new optim.SGD([p], { lr: 0.1 });
    opt.paramGroups[0].lr = Number.NaN;
    setGrads([p], [[1]], [[1]]);
    expect(() => opt.step()).toThrow(/lr/);
    p.grad = null;
    p.dispose();
  });
});

// ---- schedulers
type Sched = cz.optim.Scheduler;
const LAMBDAS: Record<string, (e: number) => number> = { pow95: (e) => 0.95 ** e };

function makeScheduler(cfg: SchedCfg, opt: cz.optim.Optimizer<any>): Sched {
  const o = cfg.opts;
  const a = cfg.args;
  switch (cfg.kind) {
    case 'StepLR':
      return new optim.StepLR(opt, a[0] as number, o);
    case 'MultiStepLR':
      return new optim.MultiStepLR(opt, a[0] as number[], o);
    case 'ConstantLR':
      return new optim.ConstantLR(opt, o);
    case 'LinearLR':
      return new optim.LinearLR(opt, o);
    case 'ExponentialLR':
      return new optim.ExponentialLR(opt, a[0] as number);
    case 'PolynomialLR':
      return new optim.PolynomialLR(opt, o);
    case 'CosineAnnealingLR':
      return new optim.CosineAnnealingLR(opt, a[0] as number, o);
    case 'LambdaLR':
      return new optim.LambdaLR(opt, LAMBDAS[a[0] as string]);
    case 'OneCycleLR':
      return new optim.OneCycleLR(opt, a[0] as number | number[], o);
    case 'ReduceLROnPlateau':
      return new optim.ReduceLROnPlateau(opt, o);
    case 'SequentialLR':
      return new optim.SequentialLR(
        opt,
        cfg.schedulers!.map((c) => makeScheduler(c, opt) as cz.optim.LRScheduler),
        cfg.milestones!,
      );
    case 'ChainedScheduler':
      return new optim.ChainedScheduler(cfg.schedulers!.map((c) => makeScheduler(c, opt) as cz.optim.LRScheduler));
    default:
      throw new Error(`unknown scheduler ${cfg.kind}`);
  }
}

/** An optimizer over two small parameters in two groups (group 1 with its own lr), as the reference. */
function schedOptimizer(cfg: SchedulerRef, params: Tensor[]): cz.optim.Optimizer<any> {
  const { kind, opts } = cfg.optimizer;
  return makeOptimizer(kind, params, opts, [{ params: [0] }, { params: [1], lr: ref.groupLrs[1]! }]);
}

function momentumOf(opt: cz.optim.Optimizer<any>): number[] {
  return opt.paramGroups.map((g) => ('betas' in g ? (g.betas as number[])[0] : (g.momentum as number)));
}

function runSchedule(cfg: SchedulerRef, sched: Sched, opt: cz.optim.Optimizer<any>, from: number, to: number): { lrs: number[][]; moms: number[][] } {
  const lrs: number[][] = [],
    moms: number[][] = [];
  for (let s = from; s < to; s++) {
    if (cfg.metrics) sched.step(cfg.metrics[s]);
    else {
      opt.step();
      sched.step();
    }
    lrs.push(sched.getLastLr());
    moms.push(momentumOf(opt));
  }
  return { lrs, moms };
}

const nSteps = (cfg: SchedulerRef): number => cfg.metrics?.length ?? cfg.steps!;

function closeTo(actual: number[][], expected: number[][], tol: number, what: string): void {
  expect(actual.length, what).toBe(expected.length);
  actual.forEach((row, i) =>
    row.forEach((v, j) => {
      const e = expected[i][j];
      expect(Math.abs(v - e) <= tol * Math.abs(e) + 1e-15, `${what}: step ${i}, group ${j}: ${v} vs torch ${e}`).toBe(true);
    }),
  );
}

describe('LR schedulers match torch.optim.lr_scheduler', () => {
  test('every scheduler config: lr (and cycled momentum) after construction and every step, to 1e-9', () => {
    for (const cfg of ref.schedulers) {
      const params = makeParams(
        [
          [0, 0],
          [0, 0, 0],
        ],
        [[2], [3]],
      );
      const opt = schedOptimizer(cfg, params);
      const sched = makeScheduler(cfg, opt);
      const first = sched.getLastLr();
      const { lrs, moms } = runSchedule(cfg, sched, opt, 0, nSteps(cfg));
      closeTo([first, ...lrs], cfg.lrs, 1e-9, cfg.name);
      if (cfg.momentum && cfg.kind === 'OneCycleLR') closeTo(moms, cfg.momentum.slice(1), 1e-9, `${cfg.name} momentum`);
      expect(opt.paramGroups.map((g) => g.lr)).toEqual(sched.getLastLr());
      opt.dispose();
      disposeAll(params);
    }
  });

  test('stateDict/loadStateDict (through JSON) resumes every scheduler exactly', () => {
    for (const cfg of ref.schedulers) {
      const total = nSteps(cfg);
      const cut = Math.floor(total / 2);
      const params = makeParams(
        [
          [0, 0],
          [0, 0, 0],
        ],
        [[2], [3]],
      );
      const opt = schedOptimizer(cfg, params);
      const sched = makeScheduler(cfg, opt);
      runSchedule(cfg, sched, opt, 0, cut);
      const optState = opt.stateDict();
      const saved = JSON.parse(JSON.stringify({ groups: optState.groups, sched: sched.stateDict() }));
      disposeAll(Object.values(optState.state));
      const rest = runSchedule(cfg, sched, opt, cut, total);

      // A resumed run: build everything the same way, then load the optimizer's and the scheduler's state.
      const params2 = makeParams(
        [
          [0, 0],
          [0, 0, 0],
        ],
        [[2], [3]],
      );
      const opt2 = schedOptimizer(cfg, params2);
      const sched2 = makeScheduler(cfg, opt2);
      opt2.loadStateDict({ state: {}, groups: saved.groups });
      sched2.loadStateDict(saved.sched);
      const resumed = runSchedule(cfg, sched2, opt2, cut, total);
      expect(resumed, cfg.name).toEqual(rest);
      opt.dispose();
      opt2.dispose();
      disposeAll(params);
      disposeAll(params2);
    }
  });

  test('schedulers check their arguments', () => {
    const [p] = makeParams([[0]], [[1]]);
    const opt = new optim.SGD([p], { lr: 0.1 });
    expect(() => new optim.StepLR(opt, 0)).toThrow(/stepSize/);
    expect(() => new optim.StepLR(opt, 2, { gama: 0.1 } as never)).toThrow(/unknown option 'gama'/);
    expect(() => new optim.OneCycleLR(opt, 1)).toThrow(/totalSteps/);
    expect(() => new optim.ReduceLROnPlateau(opt, { factor: 1 })).toThrow(/factor/);
    expect(() => new optim.ReduceLROnPlateau(opt, { mode: 'up' as never })).toThrow(/mode/);
    expect(() => new optim.LinearLR(opt, { startFactor: 0 })).toThrow(/startFactor/);
    const cos = new optim.CosineAnnealingLR(opt, 10);
    expect(() => new optim.SequentialLR(opt, [cos], [3])).toThrow(/milestones/);
    const plateau = new optim.ReduceLROnPlateau(opt);
    expect(() => plateau.step()).toThrow(/metric/);
    const oc = new optim.OneCycleLR(opt, 1, { totalSteps: 2 });
    oc.step();
    oc.step();
    expect(() => oc.step()).toThrow(/tried to step 4 times/);
    p.dispose();
  });

  test('ReduceLROnPlateau takes a tensor metric and saves best as JSON-safe null before any step', () => {
    const [p] = makeParams([[0]], [[1]]);
    const opt = new optim.SGD([p], { lr: 0.1 });
    const s = new optim.ReduceLROnPlateau(opt, { patience: 0 });
    expect(s.stateDict().best).toBeNull();
    cz.tidy(() => s.step(cz.tensor(2.0)));
    expect(s.best).toBe(2);
    s.step(3);
    expect(s.getLastLr()).toEqual([0.1 * 0.1]);
    expect(optim.lrScheduler.ReduceLROnPlateau).toBe(optim.ReduceLROnPlateau);
    p.dispose();
  });
});

describe('training', () => {
  function data(): { x: Tensor; y: Tensor } {
    return cz.tidy(() => {
      cz.manualSeed(0);
      const x = cz.randn([64, 4]);
      // Three classes from fixed linear scores: learnable by a small MLP.
      const w = cz.tensor([
        [1, -1, 0.5],
        [0.5, 1, -1],
        [-1, 0.5, 1],
        [0.3, -0.2, 0.1],
      ]);
      const y = x.matmul(w).argmax(1);
      return { x, y };
    });
  }

  function trainSteps(opt: cz.optim.Optimizer<any>, model: cz.nn.Module, x: Tensor, y: Tensor, n: number, onStep?: (i: number) => void): number[] {
    const losses: number[] = [];
    for (let i = 0; i < n; i++) {
      losses.push(
        cz.tidy(() => {
          opt.zeroGrad();
          const loss = F.crossEntropy(model.forward(x), y);
          loss.backward();
          opt.step();
          return loss.item();
        }),
      );
      onStep?.(i);
    }
    return losses;
  }

  test('a small MLP trains with SGD + nesterov and a cosine schedule; no tensor leaks across steps', () => {
    const { x, y } = data();
    cz.manualSeed(1);
    const model = new nn.Sequential(new nn.Linear(4, 32), new nn.ReLU(), new nn.Linear(32, 3));
    const opt = new optim.SGD(model.parameters(), { lr: 0.2, momentum: 0.9, nesterov: true, weightDecay: 1e-4 });
    const sched = new optim.CosineAnnealingLR(opt, 60);
    const counts: number[] = [];
    const losses = trainSteps(opt, model, x, y, 60, (i) => {
      sched.step();
      if (i >= 1) counts.push(cz.memory().tensors);
    });
    expect(new Set(counts).size, `live tensors per step: ${counts.slice(0, 5).join(', ')}...`).toBe(1);
    expect(losses[59]).toBeLessThan(0.3 * losses[0]);
    expect(sched.getLastLr()[0]).toBeCloseTo(0, 12);
    opt.zeroGrad();
    opt.dispose();
    disposeAll(model.parameters());
    x.dispose();
    y.dispose();
  });

  test('AdamW, Adam (amsgrad) and RMSprop (TF style, momentum) train too, with constant tensor counts', () => {
    const { x, y } = data();
    const make = (m: cz.nn.Module): cz.optim.Optimizer<any>[] => [
      new optim.AdamW(m.parameters(), { lr: 1e-2 }),
      new optim.Adam(m.parameters(), { lr: 1e-2, amsgrad: true, weightDecay: 1e-4 }),
      new optim.RMSprop(m.parameters(), { lr: 1e-2, alpha: 0.9, eps: 1e-3, momentum: 0.9, centered: true, tfStyle: true }),
    ];
    for (let k = 0; k < 3; k++) {
      cz.manualSeed(1);
      const model = new nn.Sequential(new nn.Linear(4, 32), new nn.ReLU(), new nn.Linear(32, 3));
      const opt = make(model)[k];
      for (const o of make(model)) if (o !== opt) o.dispose();
      const counts: number[] = [];
      const losses = trainSteps(opt, model, x, y, 40, (i) => {
        if (i >= 1) counts.push(cz.memory().tensors);
      });
      expect(new Set(counts).size, String(opt)).toBe(1);
      expect(losses[39], String(opt)).toBeLessThan(0.5 * losses[0]);
      opt.zeroGrad();
      opt.dispose();
      disposeAll(model.parameters());
    }
    x.dispose();
    y.dispose();
  });
});
