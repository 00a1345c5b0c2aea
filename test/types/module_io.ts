// Compile-time checks of Module<In, Out> (run by test/nn_head_chain.test.ts through tsc).
import type { Tensor } from '../../src/tensor/tensor.js';
import { Module, type AnyModule } from '../../src/nn/module.js';
import { Sequential, Conv2d } from '../../src/nn/layers.js';

type Pair = [Tensor, Tensor];

/** A DPN-style dual-path block: takes and returns (residual, dense) paths. */
class DualPath extends Module<Pair, Pair> {
  forward([res, dense]: Pair): Pair {
    return [res, dense];
  }
}
/** Joins the two paths. */
class Join extends Module<Pair, Tensor> {
  forward([a, b]: Pair): Tensor {
    return a.add(b);
  }
}

declare const t: Tensor;
const block = new DualPath();
const pair: Pair = block.forward([t, t]);
// @ts-expect-error a dual-path block takes a pair, not a tensor
block.forward(t);
// @ts-expect-error and returns a pair
const wrong: Tensor = block.forward([t, t]);

const net = new Sequential<Pair, Tensor>(block, block, new Join());
const y: Tensor = net.forward(pair);
// @ts-expect-error the chain's output is a Tensor
const notPair: Pair = net.forward(pair);

// Ordinary modules keep Tensor -> Tensor, and every module is an AnyModule for the structure walkers.
const conv: Module = new Conv2d(3, 4, 1);
const all: AnyModule[] = [conv, block, net];
export { y, wrong, notPair, all };
