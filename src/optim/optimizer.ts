// The optimizer base: parameter groups, lazily created per-parameter state, zeroGrad, and a state dict
// made of tensors plus plain JSON so that a checkpoint can store it. Subclasses write one function,
// `update`, that changes one parameter in place; step() runs it under noGrad inside a tidy scope.
import { Tensor } from '../tensor/tensor.js';
import { noGrad, scalarTensor } from '../tensor/creation.js';
import { tidy, keep } from '../tensor/scope.js';
import { ConvzooError, check } from '../errors.js';

/** Hyperparameters every optimizer has. Schedulers change `lr`. */
export interface Hyperparameters {
  lr: number;
}

/** One parameter group: its parameters and its hyperparameters (mutable: schedulers set `lr`). */
export type ParamGroup<H extends Hyperparameters = Hyperparameters> = H & {
  params: Tensor[];
  /** The learning rate schedulers start from; set by the first scheduler attached (torch's `initial_lr`). */
  initialLr?: number;
};

/** A parameter group as given to a constructor: parameters plus overrides of the optimizer's options. */
export type ParamGroupInput<H extends Hyperparameters> = { params: Iterable<Tensor> } & Partial<H>;

/** What an optimizer takes: parameters (`model.parameters()`) or parameter groups. */
export type ParamsInput<H extends Hyperparameters> = Iterable<Tensor> | readonly ParamGroupInput<H>[];

/** A parameter group in a state dict: hyperparameters (plain JSON) and the indices of its parameters. */
export interface ParamGroupState {
  params: number[];
  [hyperparameter: string]: unknown;
}

/**
 * An optimizer's state, ready for a checkpoint: tensors under `state`, everything else plain JSON.
 *
 * `state` keys are `<param index>.<name>`, where the index counts parameters across groups in order
 * (`0.momentum_buffer`, `3.exp_avg`, `3.exp_avg_sq`, `3.step`). Buffer names are PyTorch's. A step
 * count is a 0-d float64 tensor. Parameters that have not been updated yet have no entries.
 * Every tensor is a new handle that the caller owns (dispose it when done); buffers share storage with
 * the optimizer's live state, so clone them to keep a snapshot while training goes on.
 */
export interface OptimizerStateDict {
  state: Record<string, Tensor>;
  groups: ParamGroupState[];
}

/** @internal The per-parameter state: a step count and named buffers (owned by the optimizer). */
export interface ParamState {
  step: number;
  buffers: Record<string, Tensor>;
}

const isIterable = (x: unknown): x is Iterable<unknown> => x !== null && typeof x === 'object' && Symbol.iterator in x;

/** Throws E_ARG on an option that `allowed` does not list (a misspelt option fails at once). */
export function checkOptionKeys(fn: string, opts: object, allowed: readonly string[]): void {
  for (const k of Object.keys(opts)) {
    if (!allowed.includes(k)) throw new ConvzooError(`${fn}: unknown option '${k}' (expected one of: ${allowed.join(', ')})`, 'E_ARG', fn);
  }
}

/** Throws E_ARG unless `value` is a finite number >= min (and < max when given). */
export function checkRange(fn: string, name: string, value: unknown, min: number, max?: number): void {
  const ok = typeof value === 'number' && Number.isFinite(value) && value >= min && (max === undefined || value < max);
  check(ok, fn, `expected ${name} to be a number >= ${min}${max === undefined ? '' : ` and < ${max}`}, got ${String(value)}`);
}

export abstract class Optimizer<H extends Hyperparameters = Hyperparameters> {
  /** The options every group starts from (a group's own values override them). */
  readonly defaults: Readonly<H>;
  /** The groups; their hyperparameters may be changed between steps (schedulers set `lr`). */
  readonly paramGroups: ParamGroup<H>[] = [];
  /** @internal */
  protected readonly state = new Map<Tensor, ParamState>();
  /** @internal The optimizer's name in messages. */
  protected readonly name: string;
  private readonly stepPreHooks = new Set<() => void>();

  protected constructor(name: string, params: ParamsInput<H>, defaults: H) {
    this.name = name;
    this.defaults = Object.freeze(structuredClone(defaults));
    check(isIterable(params), name, 'expected params to be an iterable of tensors (model.parameters()) or an array of parameter groups');
    const list = [...params];
    check(list.length > 0, name, 'got an empty parameter list');
    if (list.every((x) => x instanceof Tensor)) this.addParamGroup({ params: list as Tensor[] } as unknown as ParamGroupInput<H>);
    else if (list.every((x) => x !== null && typeof x === 'object' && !(x instanceof Tensor) && 'params' in (x as object))) {
      for (const g of list as ParamGroupInput<H>[]) this.addParamGroup(g);
    } else {
      throw new ConvzooError(`${name}: expected params to be all tensors or all parameter groups ({params, ...options})`, 'E_ARG', name);
    }
  }

  /** Checks one group's merged hyperparameters (subclasses check ranges and combinations). */
  protected abstract validate(h: H): void;

  /** Updates one parameter in place from its gradient. Runs under noGrad inside a tidy scope. */
  protected abstract update(p: Tensor, grad: Tensor, group: ParamGroup<H>): void;

  /** Adds a group (e.g. layers unfrozen during fine-tuning); options it leaves out come from `defaults`. */
  addParamGroup(group: ParamGroupInput<H>): void {
    const fn = this.name;
    check(group !== null && typeof group === 'object' && 'params' in group, fn, 'expected a parameter group {params, ...options}');
    checkOptionKeys(fn, group, ['params', ...Object.keys(this.defaults)]);
    const params = group.params instanceof Tensor ? [group.params] : [...group.params];
    check(params.length > 0, fn, `parameter group ${this.paramGroups.length} has no parameters`);
    const seen = new Set<Tensor>(this.paramGroups.flatMap((g) => g.params));
    for (const [i, p] of params.entries()) {
      check(p instanceof Tensor, fn, `parameter ${i} of group ${this.paramGroups.length} is not a tensor`);
      check(!seen.has(p), fn, `parameter ${i} of group ${this.paramGroups.length} already appears in this optimizer`);
      seen.add(p);
    }
    const merged = { ...structuredClone(this.defaults as H) } as H;
    for (const [k, v] of Object.entries(group)) if (k !== 'params' && v !== undefined) (merged as Record<string, unknown>)[k] = Array.isArray(v) ? [...v] : v;
    this.validate(merged);
    this.paramGroups.push({ ...merged, params } as ParamGroup<H>);
  }

  /**
   * Runs `hook(optimizer)` at the start of every step(), before any update (torch's
   * register_step_pre_hook): e.g. gradient clipping (optim.AGC.attach). Returns a handle that removes it.
   */
  registerStepPreHook(hook: (optimizer: this) => void): { remove(): void } {
    check(typeof hook === 'function', this.name, 'expected the step pre-hook to be a function');
    const own = () => hook(this); // a distinct entry, so that one function can be registered twice
    this.stepPreHooks.add(own);
    return { remove: () => void this.stepPreHooks.delete(own) };
  }

  /** Performs one update of every parameter that has a gradient (parameters without one are skipped). */
  step(): void {
    for (const hook of this.stepPreHooks) hook();
    noGrad(() =>
      tidy(() => {
        for (const group of this.paramGroups) {
          this.validate(group);
          for (const p of group.params) {
            const grad = p.grad;
            if (grad === null) continue;
            this.update(p, grad, group);
          }
        }
      }),
    );
  }

  /**
   * Clears the gradients of every parameter. By default they are set to none (freeing their memory,
   * as torch 2 and Module.zeroGrad do); `{setToNone: false}` zeroes them in place instead.
   */
  zeroGrad(opts: { setToNone?: boolean } = {}): void {
    const setToNone = opts.setToNone ?? true;
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        if (setToNone) {
          p.grad = null;
          continue;
        }
        const grad = p.grad;
        if (grad !== null) {
          noGrad(() => grad.zero_());
          grad.dispose();
        }
      }
    }
  }

  /** @internal The state of `p`, created (step 0, no buffers) on first use. */
  protected stateOf(p: Tensor): ParamState {
    let s = this.state.get(p);
    if (!s) {
      s = { step: 0, buffers: {} };
      this.state.set(p, s);
    }
    return s;
  }

  /** @internal Stores a buffer the optimizer owns (kept out of every tidy scope). */
  protected setBuffer(s: ParamState, name: string, t: Tensor): Tensor {
    s.buffers[name]?.dispose();
    s.buffers[name] = keep(t);
    return t;
  }

  /** The state for a checkpoint; see OptimizerStateDict for the layout. */
  stateDict(): OptimizerStateDict {
    const state: Record<string, Tensor> = {};
    const groups: ParamGroupState[] = [];
    let index = 0;
    for (const g of this.paramGroups) {
      const { params, ...hyper } = g;
      const indices: number[] = [];
      for (const p of params) {
        const s = this.state.get(p);
        if (s) {
          state[`${index}.step`] = scalarTensor(s.step, { dtype: 'float64' });
          for (const [k, t] of Object.entries(s.buffers)) state[`${index}.${k}`] = t.detach();
        }
        indices.push(index++);
      }
      groups.push({ ...structuredClone(hyper), params: indices });
    }
    return { state, groups };
  }

  /**
   * Restores state saved by stateDict() (from an optimizer built the same way over the same
   * parameters): buffers are copied (cast to each parameter's dtype and device), step counts and
   * every group's hyperparameters (lr included) are restored, so that training continues exactly.
   * Everything is checked before anything changes; problems throw E_STATE_DICT.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const fn = `${this.name}.loadStateDict`;
    const bad = (msg: string): never => {
      throw new ConvzooError(`${fn}: ${msg}`, 'E_STATE_DICT', fn);
    };
    if (!sd || typeof sd !== 'object' || !Array.isArray(sd.groups) || !sd.state || typeof sd.state !== 'object') bad('expected {state, groups}');
    if (sd.groups.length !== this.paramGroups.length) bad(`the state dict has ${sd.groups.length} parameter groups, this optimizer ${this.paramGroups.length}`);
    const params = this.paramGroups.flatMap((g) => g.params);
    sd.groups.forEach((g, i) => {
      if (!Array.isArray(g.params) || g.params.length !== this.paramGroups[i].params.length) {
        bad(`group ${i} has ${Array.isArray(g.params) ? g.params.length : 'no'} parameters in the state dict, ${this.paramGroups[i].params.length} here`);
      }
      const extra = Object.keys(g).filter((k) => k !== 'params' && k !== 'initialLr' && !(k in this.defaults));
      if (extra.length) bad(`group ${i} has unknown hyperparameters: ${extra.join(', ')}`);
      const merged = { ...this.paramGroups[i], ...structuredClone(g), params: this.paramGroups[i].params };
      try {
        this.validate(merged as ParamGroup<H>);
      } catch (e) {
        bad(`group ${i}: ${(e as Error).message}`);
      }
    });
    // Saved indices follow the saving optimizer's order; map them to this optimizer's parameters.
    const byIndex = new Map<number, Tensor>();
    sd.groups.forEach((g, gi) => g.params.forEach((idx, k) => byIndex.set(idx, this.paramGroups[gi].params[k])));
    const incoming = new Map<Tensor, { step?: Tensor; buffers: Record<string, Tensor> }>();
    for (const [key, t] of Object.entries(sd.state)) {
      const m = /^(\d+)\.(.+)$/.exec(key);
      if (!m) bad(`state key '${key}' is not '<param index>.<name>'`);
      const p = byIndex.get(Number(m![1]));
      if (!p) bad(`state key '${key}' names no parameter of this optimizer (it has ${params.length})`);
      if (!(t instanceof Tensor)) bad(`state['${key}'] is not a tensor`);
      const entry = incoming.get(p!) ?? { buffers: {} };
      incoming.set(p!, entry);
      if (m![2] === 'step') {
        if (t.numel() !== 1) bad(`state['${key}'] should hold one number, has shape [${t.shape.join(', ')}]`);
        entry.step = t;
      } else {
        const a = t.shape,
          b = p!.shape;
        if (a.length !== b.length || a.some((d, i) => d !== b[i])) bad(`state['${key}'] has shape [${a.join(', ')}], its parameter [${b.join(', ')}]`);
        entry.buffers[m![2]] = t;
      }
    }
    // All checked: replace the state and the hyperparameters.
    this.disposeState();
    for (const [p, e] of incoming) {
      const s = this.stateOf(p);
      s.step = e.step ? e.step.item() : 0;
      for (const [k, t] of Object.entries(e.buffers)) {
        this.setBuffer(
          s,
          k,
          tidy(() => noGrad(() => t.to(p.dtype).to(p.device).clone())),
        );
      }
    }
    sd.groups.forEach((g, i) => {
      const target = this.paramGroups[i] as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(g)) if (k !== 'params') target[k] = structuredClone(v);
    });
  }

  private disposeState(): void {
    for (const s of this.state.values()) for (const t of Object.values(s.buffers)) t.dispose();
    this.state.clear();
  }

  /** Frees the optimizer's state (momentum buffers, moment estimates). The optimizer can still step: state restarts. */
  dispose(): void {
    this.disposeState();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    const lines = this.paramGroups.map((g, i) => {
      const { params, ...hyper } = g;
      return `  group ${i} (${params.length} params): ${Object.entries(hyper)
        .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.join(', ')}]` : String(v)}`)
        .join(', ')}`;
    });
    return `${this.name}(\n${lines.join('\n')}\n)`;
  }
}
