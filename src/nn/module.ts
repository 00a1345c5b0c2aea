// cz.nn.Module: submodules, parameters and buffers are found from the object's fields, and their
// dotted names are PyTorch's state-dict keys (`layer1.0.conv1.weight`). Field names therefore copy
// PyTorch's (`running_mean`, `downsample`); fields starting with `_` are private and not state.
import { Tensor, _wrap, isFloatingDType } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { noGrad } from '../tensor/creation.js';
import { ops, native } from '../native.js';
import { ConvzooError } from '../errors.js';
import type { MemoryFormat } from '../native_ops.js';

/** A tensor that a module learns. Modules own their parameters; tidy() never frees them. */
export class Parameter extends Tensor {
  /** Takes over `t`'s handle (t is left disposed) and marks it as requiring gradients. */
  constructor(t: Tensor, requiresGrad = true) {
    const h = t.handle;
    t._h = null; // ownership moves to the parameter
    super(h);
    keep(this);
    if (requiresGrad) ops.set_requires_grad(h, true);
  }
}

/**
 * Gives tensor `t` the storage of `moved` (a cast, move or re-layout of it) in place, so that the module's
 * field, and an optimizer holding the Parameter, see the new one; a trainable parameter stays trainable.
 */
function replaceStorage(t: Tensor, moved: Tensor): void {
  const h = moved.handle;
  moved._h = null;
  const wasParam = t instanceof Parameter && t.requiresGrad;
  native.dispose(t.handle);
  t._h = h;
  (t as unknown as { _dtype?: string })._dtype = undefined; // cached metadata is re-read lazily
  if (wasParam) ops.set_requires_grad(h, true);
}

/** Marks a tensor as a module buffer (state that is saved but not learned); tidy() never frees it. */
export function buffer(t: Tensor): Tensor {
  return keep(t);
}

export interface LoadStateDictOptions {
  strict?: boolean;
}
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** A module of any input and output type (what the structure walkers yield). */
export type AnyModule = Module<any, any>;

/**
 * A layer or network. `In` and `Out` type forward(): most modules map a Tensor to a Tensor (the
 * default), a dual-path block can take and return a pair (`Module<[Tensor, Tensor], [Tensor, Tensor]>`),
 * a dense layer a list (`Module<Tensor[], Tensor>`).
 */
export abstract class Module<In = Tensor, Out = Tensor> {
  training = true;

  abstract forward(x: In): Out;

  /** forward(), for symmetry with PyTorch's `module(x)`. */
  call(x: In): Out {
    return this.forward(x);
  }

  // ---- structure
  *namedChildren(): Generator<[string, AnyModule]> {
    for (const [k, v] of Object.entries(this)) if (!k.startsWith('_') && v instanceof Module) yield [k, v];
  }
  *children(): Generator<AnyModule> {
    for (const [, m] of this.namedChildren()) yield m;
  }
  *namedModules(prefix = ''): Generator<[string, AnyModule]> {
    yield [prefix, this];
    for (const [k, m] of this.namedChildren()) yield* m.namedModules(prefix ? `${prefix}.${k}` : k);
  }
  *modules(): Generator<AnyModule> {
    for (const [, m] of this.namedModules()) yield m;
  }

  /** @internal Own tensor fields: parameters and buffers, in declaration order. */
  *ownTensors(): Generator<[string, Tensor]> {
    for (const [k, v] of Object.entries(this)) if (!k.startsWith('_') && v instanceof Tensor) yield [k, v];
  }
  *namedParameters(prefix = '', recurse = true): Generator<[string, Parameter]> {
    for (const [k, v] of this.ownTensors()) if (v instanceof Parameter) yield [prefix ? `${prefix}.${k}` : k, v];
    if (recurse) for (const [k, m] of this.namedChildren()) yield* m.namedParameters(prefix ? `${prefix}.${k}` : k, true);
  }
  parameters(recurse = true): Parameter[] {
    return [...this.namedParameters('', recurse)].map(([, p]) => p);
  }
  *namedBuffers(prefix = '', recurse = true): Generator<[string, Tensor]> {
    for (const [k, v] of this.ownTensors()) if (!(v instanceof Parameter)) yield [prefix ? `${prefix}.${k}` : k, v];
    if (recurse) for (const [k, m] of this.namedChildren()) yield* m.namedBuffers(prefix ? `${prefix}.${k}` : k, true);
  }
  buffers(recurse = true): Tensor[] {
    return [...this.namedBuffers('', recurse)].map(([, b]) => b);
  }
  /** Number of parameter values (optionally only trainable ones). */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.numel();
    return n;
  }

  /** Applies fn to every module, children first (as torch's Module.apply). */
  apply(fn: (m: AnyModule) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Clears every parameter's gradient (sets it to none, as torch does by default). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Moves or casts every parameter and buffer in place; parameters keep their identity. */
  to(target: string): this {
    noGrad(() => {
      for (const t of [...this.parameters(), ...this.buffers()]) {
        const isDevice = target === 'cpu' || target.startsWith('cuda');
        if (!isDevice && !isFloatingDType(t.dtype)) continue; // as torch: a dtype cast leaves integer buffers alone
        replaceStorage(t, t.to(target));
      }
    });
    return this;
  }

  /**
   * Re-lays out every 4-d parameter and buffer in place (torch's `module.to(memory_format=...)`):
   * 'channels_last' stores them NHWC, the layout oneDNN's convolutions work in. Shapes do not change.
   */
  toMemoryFormat(format: MemoryFormat): this {
    noGrad(() => {
      for (const t of [...this.parameters(), ...this.buffers()]) {
        if (t.ndim !== 4 || t.isContiguous(format)) continue;
        replaceStorage(t, t.contiguous(format));
      }
    });
    return this;
  }

  /** Frees every parameter and buffer of this module and its children (the module is unusable afterwards). */
  dispose(): void {
    for (const t of [...this.parameters(), ...this.buffers()]) t.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- state
  /** Detached handles on every parameter and buffer, keyed by PyTorch name. Dispose them when done. */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [name, m] of this.namedModules()) {
      for (const [k, t] of m.ownTensors()) {
        if (m.isStateKey(k)) out[name ? `${name}.${k}` : k] = t.detach();
      }
    }
    return out;
  }
  /** Every state-dict key with its shape, in stateDict() order, without making tensor handles. */
  stateShapes(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const [name, m] of this.namedModules()) {
      for (const [k, t] of m.ownTensors()) if (m.isStateKey(k)) out.set(name ? `${name}.${k}` : k, t.shape);
    }
    return out;
  }
  /** @internal Whether an own tensor field is saved in the state dict (overridden for non-persistent buffers). */
  isStateKey(_field: string): boolean {
    return true;
  }

  /**
   * Copies values from a state dict into this module's parameters and buffers. Strict by default:
   * missing, unexpected and shape-mismatched keys are all listed in one error. A missing
   * `num_batches_tracked` (absent from old checkpoints) is accepted.
   */
  loadStateDict(sd: Record<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const own = new Map<string, Tensor>();
    for (const [name, m] of this.namedModules()) {
      for (const [k, t] of m.ownTensors()) if (m.isStateKey(k)) own.set(name ? `${name}.${k}` : k, t);
    }
    const missing = [...own.keys()].filter((k) => !(k in sd) && !k.endsWith('num_batches_tracked'));
    const unexpected = Object.keys(sd).filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, t] of own) {
      const src = sd[k];
      if (!src) continue;
      const a = t.shape,
        b = src.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) mismatched.push(`${k}: checkpoint [${b.join(', ')}] vs model [${a.join(', ')}]`);
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing keys (${missing.length}): ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', ...' : ''}`);
      if (unexpected.length)
        parts.push(`unexpected keys (${unexpected.length}): ${unexpected.slice(0, 20).join(', ')}${unexpected.length > 20 ? ', ...' : ''}`);
      if (mismatched.length) parts.push(`shape mismatches (${mismatched.length}): ${mismatched.slice(0, 20).join('; ')}`);
      throw new ConvzooError(`loadStateDict: ${parts.join('; ')}`, 'E_STATE_DICT');
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const src = sd[k];
        if (src) t.copy_(src);
      }
    });
    return { missingKeys: missing, unexpectedKeys: unexpected };
  }

  // ---- display
  /** One line of constructor arguments, shown by toString (e.g. "3, 64, kernelSize=[7, 7]"). */
  extraRepr(): string {
    return '';
  }
  toString(): string {
    const kids = [...this.namedChildren()];
    const head = `${this.constructor.name}(${this.extraRepr()}`;
    if (!kids.length) return `${head})`;
    const lines = kids.map(([k, m]) => `  (${k}): ${m.toString().split('\n').join('\n  ')}`);
    return `${head}\n${lines.join('\n')}\n)`;
  }
}

/**
 * A block whose residual branch can start as the identity: zeroInitLast() zeroes the branch's last
 * norm (Goyal et al. 2017). Networks find such blocks by this capability, not by their class.
 */
export interface ZeroInitLast {
  zeroInitLast(): void;
}

export function hasZeroInitLast(m: unknown): m is ZeroInitLast {
  return typeof (m as Partial<ZeroInitLast> | null)?.zeroInitLast === 'function';
}

/** One step of runChain: a module, a function of the previous output, or null (an absent optional layer: skipped). */
export type ChainStep = AnyModule | ((x: any) => any) | null | undefined;

/** The tensors a chain value holds: itself, or the members of a tuple or list (dual-path and dense blocks). */
function tensorsOf(v: unknown): Tensor[] {
  if (v instanceof Tensor) return [v];
  return Array.isArray(v) ? v.filter((t): t is Tensor => t instanceof Tensor) : [];
}

/** Disposes the tensors of `done` that neither `next` nor the chain's `input` holds. */
function freeConsumed(done: unknown, next: unknown, input: unknown): void {
  if (done === input || done === next) return;
  if (done instanceof Tensor && !Array.isArray(next) && !Array.isArray(input)) {
    done.dispose();
    return;
  }
  const kept = new Set([...tensorsOf(next), ...tensorsOf(input)]);
  for (const t of tensorsOf(done)) if (!kept.has(t)) t.dispose();
}

/**
 * Runs `steps` in turn on `x` and returns the last output, freeing each intermediate as soon as the
 * next step has consumed it, as PyTorch's reference counting does. Never frees `x`, nor a value a step
 * passes through (in-place ops, identities); autograd keeps what backward needs. If a step throws, the
 * last intermediate is freed too. Fewer activations alive at once means less memory reported to V8 and
 * fewer of its GC runs: 2-7% faster at batch 16 than freeing them at the end (bench/models.mjs).
 */
export function runChain<Out = Tensor, In = Tensor>(x: In, steps: Iterable<ChainStep>): Out {
  let out: unknown = x;
  try {
    for (const step of steps) {
      if (!step) continue;
      const next: unknown = step instanceof Module ? step.forward(out) : step(out);
      freeConsumed(out, next, x);
      out = next;
    }
  } catch (e) {
    freeConsumed(out, undefined, x);
    throw e;
  }
  return out as Out;
}

export { _wrap };
