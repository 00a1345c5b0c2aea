// The foundations the families share: the classifier head, runChain, and Module<In, Out> typing.
import { describe, test, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { checkLeaks, disposeModel } from './helpers/tv_reference.js';

checkLeaks();

const { ClassifierHead, HeadModule, runChain, Sequential, Linear } = cz.nn;

/** A model-like owner of a final layer at `fc`. */
class Owner extends cz.nn.Module {
  fc!: cz.nn.Module;
  forward(x: Tensor): Tensor {
    return x;
  }
}

describe('ClassifierHead', () => {
  test("avg, max and catavgmax global pooling, then the final Linear at the owner's field", () =>
    cz.tidy(() => {
      const x = cz.randn([2, 4, 3, 3]);
      const flat = x.flatten(2);
      const want = { avg: flat.mean(2), max: flat.amax(2), catavgmax: cz.cat([flat.mean(2), flat.amax(2)], 1) };
      for (const pool of ['avg', 'max', 'catavgmax'] as const) {
        const owner = new Owner();
        const head = new ClassifierHead({ owner, field: 'fc' }, 4, 3, { pool });
        try {
          const fc = owner.fc as cz.nn.Linear;
          expect(fc.inFeatures, pool).toBe(pool === 'catavgmax' ? 8 : 4);
          expect([...owner.stateShapes().keys()]).toEqual(['fc.weight', 'fc.bias']);
          const pre = head.forward(x, { preLogits: true, training: false });
          expect(pre.sub(want[pool]).abs().max().item(), pool).toBeLessThan(1e-6);
          const logits = head.forward(x, { training: false });
          expect(logits.sub(fc.forward(want[pool])).abs().max().item(), pool).toBeLessThan(1e-6);
        } finally {
          disposeModel(owner);
        }
      }
    }));

  test('a 1x1 conv final layer on the unflattened pooled map; none as pooling', () =>
    cz.tidy(() => {
      const owner = new Owner();
      const head = new ClassifierHead({ owner, field: 'fc' }, 4, 3, { useConv: true });
      try {
        expect(owner.fc).toBeInstanceOf(cz.nn.Conv2d);
        const x = cz.randn([2, 4, 5, 5]);
        const y = head.forward(x, { training: false });
        expect(y.shape).toEqual([2, 3]);
        expect(head.forward(x, { preLogits: true, training: false }).shape).toEqual([2, 4]);
        const pooled = x.mean([2, 3]);
        const fc = owner.fc as cz.nn.Conv2d;
        expect(
          y
            .sub(pooled.matmul(fc.weight.flatten(1).t()).add(fc.bias!))
            .abs()
            .max()
            .item(),
        ).toBeLessThan(1e-5);
      } finally {
        disposeModel(owner);
      }
      const flat = new Owner();
      const h2 = new ClassifierHead({ owner: flat, field: 'fc' }, 6, 2, { pool: 'none' });
      try {
        expect(h2.forward(cz.randn([3, 6]), { training: false }).shape).toEqual([3, 2]);
      } finally {
        disposeModel(flat);
      }
    }));

  test('dropout on the pooled features only in training', () =>
    cz.tidy(() => {
      const owner = new Owner();
      const head = new ClassifierHead({ owner, field: 'fc' }, 64, 2, { dropRate: 0.5 });
      try {
        const x = cz.ones([1, 64, 2, 2]);
        expect(head.forward(x, { preLogits: true, training: false }).min().item()).toBe(1);
        const t = head.forward(x, { preLogits: true, training: true }).toArray();
        expect(new Set(t.map((v) => Math.round(v)))).toEqual(new Set([0, 2]));
      } finally {
        disposeModel(owner);
      }
    }));

  test('a Sequential classifier: hidden layers first, the final layer appended; preLogits stops before it', () =>
    cz.tidy(() => {
      const seq = new Sequential(new Linear(4, 8), new cz.nn.ReLU());
      const init: string[] = [];
      const head = new ClassifierHead({ sequential: seq }, 4, 3, { hiddenFeatures: 8, initLayer: (l) => init.push(l.constructor.name) });
      try {
        expect(seq.length).toBe(3);
        expect([...seq.stateShapes()]).toEqual([
          ['0.weight', [8, 4]],
          ['0.bias', [8]],
          ['2.weight', [3, 8]],
          ['2.bias', [3]],
        ]);
        expect(init).toEqual(['Linear']);
        const x = cz.randn([2, 4, 1, 1]);
        expect(head.forward(x, { preLogits: true, training: false }).shape).toEqual([2, 8]);
        expect(head.forward(x, { training: false }).shape).toEqual([2, 3]);
        head.reset(5);
        expect(init).toEqual(['Linear', 'Linear']);
        expect(seq.length).toBe(3);
        expect((seq[2] as cz.nn.Linear).outFeatures).toBe(5);
      } finally {
        disposeModel(seq);
      }
    }));

  test('reset frees the old final layer; 0 is the identity (features out)', () => {
    const owner = new Owner();
    const head = new ClassifierHead({ owner, field: 'fc' }, 4, 3);
    try {
      const old = owner.fc as cz.nn.Linear;
      const before = cz.memory().tensors;
      head.reset(0);
      expect(
        old.weight.isDisposed ??
          (() => {
            try {
              old.weight.shape;
              return false;
            } catch {
              return true;
            }
          })(),
      ).toBe(true);
      expect(cz.memory().tensors).toBe(before - 2);
      expect(owner.fc).toBeInstanceOf(cz.nn.Identity);
      expect(head.numClasses).toBe(0);
      cz.tidy(() => expect(head.forward(cz.randn([2, 4, 3, 3]), { training: false }).shape).toEqual([2, 4]));
      expect(() => head.reset(1.5)).toThrow(/numClasses/);
    } finally {
      disposeModel(owner);
    }
  });

  test("HeadModule keeps timm's `head.fc` keys", () => {
    class Net extends cz.nn.Module {
      conv = new cz.nn.Conv2d(3, 4, 1);
      head = new HeadModule(4, 2, { pool: 'avg' });
      forward(x: Tensor): Tensor {
        return cz.tidy(() => this.head.forward(this.conv.forward(x)));
      }
    }
    const n = new Net();
    try {
      expect([...n.stateShapes().keys()]).toEqual(['conv.weight', 'conv.bias', 'head.fc.weight', 'head.fc.bias']);
      cz.tidy(() => expect(n.forward(cz.randn([1, 3, 4, 4])).shape).toEqual([1, 2]));
      n.head.reset(7);
      expect(n.stateShapes().get('head.fc.weight')).toEqual([7, 4]);
    } finally {
      disposeModel(n);
    }
  });
});

describe('runChain', () => {
  test('frees every intermediate once the next step has used it, never the input or a passed-through value', () => {
    const x = cz.randn([3]);
    const before = cz.memory().tensors;
    const seen: Tensor[] = [];
    const y = runChain<Tensor>(x, [
      (t: Tensor) => {
        seen.push(t);
        return t.mul(2);
      },
      null, // an absent optional layer
      (t: Tensor) => {
        seen.push(t);
        return t.relu_();
      }, // in place: the same tensor goes on
      (t: Tensor) => {
        seen.push(t);
        return t.add(1);
      },
      new cz.nn.Identity(),
    ]);
    expect(cz.memory().tensors).toBe(before + 1); // only the output is alive
    expect(seen[0]).toBe(x);
    expect(seen[1]).toBe(seen[2]);
    x.dispose();
    y.dispose();
  });

  test('frees the last intermediate when a step throws', () => {
    const x = cz.randn([3]);
    const before = cz.memory().tensors;
    expect(() =>
      runChain(x, [
        (t: Tensor) => t.mul(2),
        () => {
          throw new Error('boom');
        },
      ]),
    ).toThrow('boom');
    expect(cz.memory().tensors).toBe(before);
    x.dispose();
  });

  test('frees the members of a pair that the next step does not pass on (dual-path blocks)', () => {
    const x = cz.randn([2]);
    const before = cz.memory().tensors;
    const out = runChain<[Tensor, Tensor]>(x, [
      (t: Tensor) => [t.mul(2), t.mul(3)],
      ([a, b]: [Tensor, Tensor]) => [a, b.add(1)], // keeps a, replaces b
      ([a, b]: [Tensor, Tensor]) => [a.add(b), b],
    ]);
    expect(cz.memory().tensors).toBe(before + 2);
    out.forEach((t) => t.dispose());
    x.dispose();
  });

  test('Sequential runs on it: a deep stack leaves only its output', () => {
    const seq = new Sequential(...Array.from({ length: 6 }, () => new cz.nn.Linear(4, 4)), new cz.nn.ReLU(true));
    try {
      const x = cz.randn([1, 4]);
      const before = cz.memory().tensors;
      const y = cz.noGrad(() => seq.forward(x));
      expect(cz.memory().tensors).toBe(before + 1);
      y.dispose();
      x.dispose();
    } finally {
      disposeModel(seq);
    }
  });
});

describe('Module<In, Out>', () => {
  test('a dual-path module is typed by its pair; Sequential<In, Out> chains it (checked by tsc)', () => {
    // test/types/module_io.ts compiles only if the typing holds (its @ts-expect-error lines must error).
    const root = fileURLToPath(new URL('..', import.meta.url));
    const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
    let out = '';
    try {
      execFileSync(process.execPath, [tsc, '-p', 'test/types/tsconfig.json'], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    expect(out).toBe('');
  });
});
