// The activation table: one name per nonlinearity, giving a fresh module or the plain function.
// Blocks take `act: ActLayer` so a family chooses its activation by name (timm's get_act_layer) or
// passes its own factory. Nothing here works in place unless the caller asks: a block's input may still
// be needed by autograd or by a residual branch. A block that applies the activation to a tensor it made
// itself (a norm's output, as torchvision's ReLU(inplace=True) after BN) asks, and saves a copy.
import type { Tensor } from '../tensor/tensor.js';
import { ConvzooError } from '../errors.js';
import { Module } from './module.js';
import { ReLU, ReLU6, SiLU, Hardswish, Hardsigmoid, Sigmoid, Tanh, Mish, Identity, LeakyReLU, ELU, GELU } from './layers.js';
import * as F from './functional.js';

interface ActivationEntry {
  fn: (x: Tensor) => Tensor;
  module: () => Module;
  /** The module that overwrites its input, where libtorch has the in-place op. */
  inplace?: () => Module;
}

const identityFn = (x: Tensor): Tensor => x.view(...x.shape); // a new handle, as every F function returns

// timm's spellings ('swish', 'hard_swish', 'gelu_tanh') sit next to torch's, so configs copied from
// either read as written.
const TABLE = {
  relu: { fn: F.relu, module: () => new ReLU(), inplace: () => new ReLU(true) },
  relu6: { fn: F.relu6, module: () => new ReLU6(), inplace: () => new ReLU6(true) },
  hardswish: { fn: F.hardswish, module: () => new Hardswish(), inplace: () => new Hardswish(true) },
  hard_swish: { fn: F.hardswish, module: () => new Hardswish(), inplace: () => new Hardswish(true) },
  hardsigmoid: { fn: F.hardsigmoid, module: () => new Hardsigmoid(), inplace: () => new Hardsigmoid(true) },
  hard_sigmoid: { fn: F.hardsigmoid, module: () => new Hardsigmoid(), inplace: () => new Hardsigmoid(true) },
  silu: { fn: F.silu, module: () => new SiLU() },
  swish: { fn: F.silu, module: () => new SiLU() },
  gelu: { fn: (x: Tensor) => F.gelu(x), module: () => new GELU() },
  gelu_tanh: { fn: (x: Tensor) => F.gelu(x, { approximate: 'tanh' }), module: () => new GELU('tanh') },
  elu: { fn: (x: Tensor) => F.elu(x), module: () => new ELU() },
  leaky_relu: { fn: (x: Tensor) => F.leakyRelu(x), module: () => new LeakyReLU() },
  mish: { fn: F.mish, module: () => new Mish() },
  sigmoid: { fn: F.sigmoid, module: () => new Sigmoid() },
  tanh: { fn: F.tanh, module: () => new Tanh() },
  identity: { fn: identityFn, module: () => new Identity() },
  none: { fn: identityFn, module: () => new Identity() },
} satisfies Record<string, ActivationEntry>;

/** The activation names that getActivation knows (torch's and timm's spellings). */
export type ActName = keyof typeof TABLE;
/** An activation by name, or a factory returning a new module (for options the table lacks, e.g. LeakyReLU(0.2)). */
export type ActLayer = ActName | (() => Module);

export const ACTIVATION_NAMES: readonly ActName[] = Object.keys(TABLE) as ActName[];

function entry(name: string, fn: string): ActivationEntry {
  if (!Object.hasOwn(TABLE, name)) {
    throw new ConvzooError(
      `${fn}: unknown activation '${String(name)}' (expected one of ${ACTIVATION_NAMES.join(', ')}, or a function returning a Module)`,
      'E_ARG',
      fn,
    );
  }
  return TABLE[name as ActName];
}

/** Whether `act` names the identity ('none' or 'identity'): blocks then leave the activation out. */
export function isIdentityAct(act: ActLayer | null | undefined): boolean {
  return act === null || act === undefined || act === 'none' || act === 'identity';
}

/**
 * A new activation module: from the table by name, or from the given factory. With `inplace`, a named
 * activation that libtorch can apply in place (relu, relu6, hardswish, hardsigmoid) overwrites its
 * input; ask only for tensors nothing else reads. Factories are called as given.
 */
export function getActivation(act: ActLayer, opts: { inplace?: boolean } = {}): Module {
  if (typeof act === 'function') {
    const m = act();
    if (!(m instanceof Module))
      throw new ConvzooError(`getActivation: the factory returned ${m === null ? 'null' : typeof m}, not a Module`, 'E_ARG', 'getActivation');
    return m;
  }
  const e: ActivationEntry = entry(act, 'getActivation');
  return opts.inplace && e.inplace ? e.inplace() : e.module();
}

/** The activation as a plain function (no module), e.g. for a functional forward. */
export function getActivationFn(name: ActName): (x: Tensor) => Tensor {
  return entry(name, 'getActivationFn').fn;
}
