// Long-running training must not leak: live tensor handles stay constant from step to step and the
// process's resident memory stays flat after warm-up.
import { describe, test, expect } from 'vitest';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';

const nn = cz.nn;
const F = cz.F;

function smallCnn(): cz.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 8, 3, { padding: 1, bias: false }),
    new nn.BatchNorm2d(8),
    new nn.ReLU(),
    new nn.Conv2d(8, 16, 3, { padding: 1, stride: 2, bias: false }),
    new nn.BatchNorm2d(16),
    new nn.ReLU(),
    new nn.AdaptiveAvgPool2d(1),
    new nn.Flatten(),
    new nn.Linear(16, 10),
  );
}

function disposeModule(m: cz.nn.Module): void {
  for (const t of [...m.parameters(), ...m.buffers()]) t.dispose();
}

interface Sample {
  step: number;
  tensors: number;
  rss: number;
  bytes: number;
}

/**
 * Runs `steps` training steps; samples memory after `warmup` steps (V8 and the allocator reach their
 * steady state within ~1000 steps of this size) and at the end. It yields to the
 * event loop every 50 steps, as a real loop does while it awaits data: Node runs N-API finalizers
 * (which free the small native box behind each disposed handle) from the event loop, so a loop that
 * never yields grows by ~100 bytes per tensor made until it does (see BENCHMARKS.md, memory notes).
 */
async function train(steps: number, warmup: number, step: (i: number) => number): Promise<{ first: Sample; last: Sample; losses: number[] }> {
  const losses: number[] = [];
  let first: Sample | undefined;
  const sample = (i: number): Sample => {
    // Collected first: handles dropped since the last collection hold small native boxes until their
    // finalizers run, which is garbage not yet collected, not a leak.
    (globalThis as { gc?: () => void }).gc?.();
    const m = cz.memory();
    return { step: i, tensors: m.tensors, bytes: m.bytes, rss: process.memoryUsage().rss };
  };
  const tensorCounts = new Set<number>();
  for (let i = 1; i <= steps; i++) {
    losses.push(step(i));
    if (i % 50 === 0) await new Promise(setImmediate);
    if (process.env.CZ_MEMTRACE && i % 200 === 0) {
      const u = process.memoryUsage();
      console.log(i, (u.rss / 2 ** 20).toFixed(1), (u.heapUsed / 2 ** 20).toFixed(1), (u.heapTotal / 2 ** 20).toFixed(1), (u.external / 2 ** 20).toFixed(1));
    }
    if (i >= warmup) tensorCounts.add(cz.memory().tensors);
    if (i === warmup) first = sample(i);
  }
  expect([...tensorCounts], 'live tensors changed between steps').toHaveLength(1);
  return { first: first!, last: sample(steps), losses };
}

describe('no leaks over 2,000 training steps', () => {
  test('conv-bn-relu x2 + linear, cz.optim.SGD with momentum, 8x1x16x16', async () => {
    const startTensors = cz.memory().tensors;
    cz.manualSeed(0);
    const model = smallCnn();
    const opt = new cz.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
    const x = cz.randn([8, 1, 16, 16]);
    const y = cz.randint(0, 10, [8]);
    const t0 = performance.now();
    try {
      const { first, last, losses } = await train(2000, 1000, () =>
        cz.tidy(() => {
          opt.zeroGrad();
          const loss = F.crossEntropy(model.forward(x), y);
          loss.backward();
          opt.step();
          return loss.item();
        }),
      );
      const ms = performance.now() - t0;
      console.log(
        `2000 steps in ${(ms / 1000).toFixed(1)} s; tensors ${first.tensors} -> ${last.tensors}; ` +
          `rss ${(first.rss / 2 ** 20).toFixed(1)} -> ${(last.rss / 2 ** 20).toFixed(1)} MiB; loss ${losses[0].toFixed(3)} -> ${losses[1999].toFixed(4)}`,
      );
      expect(last.tensors).toBe(first.tensors);
      expect(last.bytes).toBe(first.bytes);
      expect(last.rss).toBeLessThanOrEqual(first.rss * 1.1);
      expect(losses[1999]).toBeLessThan(losses[0] / 4); // it does learn (memorises 8 samples)
    } finally {
      x.dispose();
      y.dispose();
      disposeModule(model);
      // momentum buffers belong to the optimizer
      for (const s of (opt as unknown as { state: Map<Tensor, { buffers: Record<string, Tensor> }> }).state.values()) {
        for (const b of Object.values(s.buffers)) b.dispose();
      }
    }
    expect(cz.memory().tensors).toBe(startTensors);
  });

  test('plain SGD written inline (p.sub_(grad * lr) under noGrad), eval passes in between', async () => {
    const startTensors = cz.memory().tensors;
    cz.manualSeed(1);
    const model = smallCnn();
    const params = model.parameters();
    const x = cz.randn([8, 1, 16, 16]);
    const y = cz.randint(0, 10, [8]);
    try {
      const { first, last } = await train(1000, 400, (i) =>
        cz.tidy(() => {
          model.train();
          for (const p of params) p.grad = null;
          const loss = F.crossEntropy(model.forward(x), y);
          loss.backward();
          cz.noGrad(() => {
            for (const p of params) p.sub_(p.grad!.mul(0.05));
          });
          if (i % 10 === 0) {
            model.eval();
            cz.inferenceMode(() => model.forward(x).argmax(1)); // freed by tidy
          }
          return loss.item();
        }),
      );
      expect(last.tensors).toBe(first.tensors);
      expect(last.rss).toBeLessThanOrEqual(first.rss * 1.1);
    } finally {
      x.dispose();
      y.dispose();
      disposeModule(model);
    }
    expect(cz.memory().tensors).toBe(startTensors);
  });

  test('errors inside training steps do not leak either', () => {
    const startTensors = cz.memory().tensors;
    cz.manualSeed(2);
    const model = smallCnn();
    const x = cz.randn([8, 1, 16, 16]);
    const bad = cz.randint(0, 10, [5]); // wrong batch size: crossEntropy throws after the forward pass
    try {
      const counts = new Set<number>();
      for (let i = 0; i < 300; i++) {
        expect(() => cz.tidy(() => F.crossEntropy(model.forward(x), bad).backward())).toThrow(cz.ConvzooError);
        if (i >= 10) counts.add(cz.memory().tensors);
      }
      expect(counts.size).toBe(1);
    } finally {
      x.dispose();
      bad.dispose();
      disposeModule(model);
    }
    expect(cz.memory().tensors).toBe(startTensors);
  });
});
