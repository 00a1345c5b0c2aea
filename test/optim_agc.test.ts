// Adaptive gradient clipping (cz.optim.AGC): the unit-wise clip against torch computing the same formula
// (timm's adaptive_clip_grad, written out below), the final layer left out, the clip inside
// optimizer.step(), option checks, and `convzoo train --agc`.
import { describe, test, expect, beforeAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as cz from '../src/index.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { requirePython, sliceFashionMnist } from './reference.js';
import { checkLeaks } from './helpers/tv_reference.js';

checkLeaks();

// Shapes of every kind AGC meets: conv weight, NFNet conv gain [C,1,1,1], linear weight, bias, 0-d gain.
const SHAPES = [[6, 4, 3, 3], [6, 1, 1, 1], [5, 7], [5], []] as const;

/** float64 values: weights, and gradients whose units are scaled from 1e-4 to 10x their weight norm (some clipped, some not). */
function cases(): { w: number[]; g: number[]; shape: number[] }[] {
  let seed = 12345;
  const rand = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed / 2 ** 32) * 2 - 1;
  };
  return SHAPES.map((s) => {
    const shape: number[] = [...s];
    const n = shape.reduce((a, b) => a * b, 1);
    const units = shape.length <= 1 ? 1 : shape[0];
    const per = n / units;
    const w = Array.from({ length: n }, (_, i) => (shape.length === 4 && shape[1] === 1 && i === 2 ? 0 : rand())); // a zero unit: eps applies
    const scale = (u: number) => [1e-4, 0.005, 0.02, 0.3, 10][u % 5];
    const g = Array.from({ length: n }, (_, i) => rand() * scale(Math.floor(i / per)));
    return { w, g, shape };
  });
}

const TORCH_AGC = `
import json, sys, torch
d = json.load(sys.stdin)
out = []
for c in d['cases']:
    p = torch.tensor(c['w'], dtype=torch.float64).reshape(c['shape'])
    g = torch.tensor(c['g'], dtype=torch.float64).reshape(c['shape'])
    def unitwise(x):
        return x.norm(2) if x.ndim <= 1 else x.norm(2, dim=tuple(range(1, x.ndim)), keepdim=True)
    max_norm = unitwise(p).clamp(min=d['eps']) * d['clip']
    grad_norm = unitwise(g)
    clipped = g * (max_norm / grad_norm.clamp(min=1e-6))
    out.append(torch.where(grad_norm < max_norm, g, clipped).flatten().tolist())
print(json.dumps(out))
`;

function torchReference(cs: ReturnType<typeof cases>, clip: number, eps: number): number[][] {
  const py = requirePython('torch');
  return JSON.parse(execFileSync(py, ['-c', TORCH_AGC], { input: JSON.stringify({ cases: cs, clip, eps }), encoding: 'utf8' }));
}

function params(cs: ReturnType<typeof cases>): cz.nn.Parameter[] {
  return cs.map((c) => {
    const p = new cz.nn.Parameter(cz.tensor(c.w, c.shape, { dtype: 'float64' }));
    const g = cz.tensor(c.g, c.shape, { dtype: 'float64' });
    p.grad = g;
    g.dispose(); // the parameter holds the gradient
    return p;
  });
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('AGC against torch', () => {
  test.each([
    [0.01, 1e-3],
    [0.16, 1e-3],
    [0.01, 0.5],
  ])('clipFactor %f, eps %f: every gradient as torch computes it (float64), some units clipped and some not', (clip, eps) => {
    const cs = cases();
    const want = torchReference(cs, clip, eps);
    const ps = params(cs);
    try {
      cz.optim.adaptiveClipGrad_(ps, { clipFactor: clip, eps });
      let clippedUnits = 0,
        kept = 0;
      ps.forEach((p, i) => {
        const got = cz.tidy(() => p.grad!.data() as Float64Array);
        expect(maxDiff(got, want[i]), `shape [${cs[i].shape}]`).toBeLessThan(1e-15);
        for (let j = 0; j < got.length; j++) got[j] === cs[i].g[j] ? kept++ : clippedUnits++;
      });
      expect(clippedUnits).toBeGreaterThan(0);
      expect(kept).toBeGreaterThan(0);
    } finally {
      for (const p of ps) {
        p.grad = null;
        p.dispose();
      }
    }
  });

  test('attach: optimizer.step() clips first (SGD lr 1: p - clipped g); forModel leaves the classifier out', () => {
    const cs = cases();
    const want = torchReference(cs, 0.01, 1e-3);
    const ps = params(cs);
    const opt = new cz.optim.SGD(ps, { lr: 1 });
    try {
      const agc = new cz.optim.AGC(ps.slice(0, 4));
      expect(agc.attach(opt)).toBe(opt);
      expect(() => agc.attach(opt)).toThrow(/already/);
      opt.step();
      ps.forEach((p, i) => {
        const got = cz.tidy(() => p.data() as Float64Array);
        const g = i < 4 ? want[i] : cs[i].g; // the last (the 0-d gain) is not in this AGC: unclipped
        expect(
          maxDiff(
            got,
            cs[i].w.map((w, j) => w - g[j]),
          ),
          `param ${i}`,
        ).toBeLessThan(1e-15);
      });
    } finally {
      opt.dispose();
      for (const p of ps) {
        p.grad = null;
        p.dispose();
      }
    }
    const m = cz.buildModel('resnet20');
    try {
      const agc = cz.optim.AGC.forModel(m, { clipFactor: 0.02 });
      expect(agc.params.length).toBe(m.parameters().length - 2);
      expect(agc.params.includes((m as unknown as { fc: cz.nn.Linear }).fc.weight)).toBe(false);
      expect([agc.clipFactor, agc.eps]).toEqual([0.02, 1e-3]);
      expect(cz.optim.AGC.forModel(m, { exclude: 'layer3' }).params.length).toBeLessThan(agc.params.length);
    } finally {
      m.dispose();
    }
  });

  test('options: defaults 0.01 and 1e-3; non-positive or misspelt options fail at once', () => {
    expect(cz.optim.AGC_DEFAULTS).toEqual({ clipFactor: 0.01, eps: 1e-3 });
    expect(() => new cz.optim.AGC([], { clipFactor: 0 })).toThrow(/clipFactor/);
    expect(() => new cz.optim.AGC([], { eps: -1 })).toThrow(/eps/);
    expect(() => new cz.optim.AGC([], { clip: 0.01 } as never)).toThrow(/unknown option 'clip'/);
    class Bare extends cz.nn.Module {
      w = new cz.nn.Parameter(cz.zeros([2]));
      forward(x: cz.Tensor): cz.Tensor {
        return x;
      }
    }
    const b = new Bare();
    expect(() => cz.optim.AGC.forModel(b)).toThrow(/exclude/);
    b.dispose();
  });
});

describe('convzoo train --agc', () => {
  const CLI = path.resolve('dist/cli/main.js');
  let data = '';
  beforeAll(() => {
    data = mkdtempSync(path.join(os.tmpdir(), 'cz-agc-data-'));
    sliceFashionMnist('train', 128, data);
    sliceFashionMnist('t10k', 64, data);
  });
  const run = (extra: string[]) => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'cz-agc-'));
    const args = ['train', '--model', 'resnet20', '--data', data, '--epochs', '1', '--batch-size', '32', '--lr', '0.1'];
    const r = spawnSync('node', [CLI, ...args, '--seed', '3', '--threads', '1', '--workers', '0', '--json', '--out', out, ...extra], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { ...r, out };
  };

  test('clips (the run differs from the same run without it), is stored in the checkpoint; 0 is refused', async () => {
    const plain = run([]);
    const clipped = run(['--agc', '0.01']);
    expect(plain.status, plain.stderr).toBe(0);
    expect(clipped.status, clipped.stderr).toBe(0);
    const loss = (stdout: string) =>
      stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .find((e) => e.type === 'epoch').trainLoss;
    expect(loss(clipped.stdout)).not.toBe(loss(plain.stdout));
    const ck = await loadCheckpoint(path.join(clipped.out, 'last.ckpt'));
    try {
      expect((ck.options as { agc?: number }).agc).toBe(0.01);
    } finally {
      ck.dispose();
    }
    const bad = run(['--agc', '0']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--agc.*expected a number > 0/);
  });
});
