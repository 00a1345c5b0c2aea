// Shared by test/functional_ops.test.ts and test/layers_toolkit.test.ts: runs tools/layers_reference.py
// (torch + torchvision from /usr/bin/python3) once per test file and compares convzoo tensors with its values.
import { expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface T {
  dtype: 'float32' | 'float64' | 'int64' | 'bool';
  shape: number[];
  data: number[];
}
export interface LayersReference {
  torch: string;
  torchvision: string;
  functional: Record<string, { inputs: T[]; outputs: T[]; grads: (T | null)[]; seed?: number }>;
  modules: Record<
    string,
    {
      keys: string[];
      state: Record<string, T>;
      training: boolean;
      input: T;
      output: T;
      grad_input: T;
      grad_params: Record<string, T>;
      after: Record<string, T>;
    }
  >;
  make_divisible: [number, number, number | null, number, number][];
  same_padding: [number, number, number, number, number][];
  eca_kernel: [number, number][];
}

export function loadReference(): LayersReference {
  const dir = mkdtempSync(path.join(tmpdir(), 'convzoo-layers-'));
  try {
    const out = path.join(dir, 'reference.json');
    execFileSync('/usr/bin/python3', ['-W', 'ignore', path.join(root, 'tools/layers_reference.py'), out], { stdio: 'inherit' });
    return JSON.parse(readFileSync(out, 'utf8')) as LayersReference;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function decode(t: T, opts: { requiresGrad?: boolean } = {}): Tensor {
  switch (t.dtype) {
    case 'float32':
      return cz.tensor(Float32Array.from(t.data), t.shape, opts);
    case 'float64':
      return cz.tensor(Float64Array.from(t.data), t.shape, opts);
    case 'int64':
      return cz.tensor(
        BigInt64Array.from(t.data, (v) => BigInt(v)),
        t.shape,
      );
    case 'bool':
      return cz.tensor(Uint8Array.from(t.data), t.shape, { dtype: 'bool' });
  }
}

/** allclose(actual, expected): |a - e| <= atol + rtol * |e| elementwise (torch's rule), with the worst element named. */
export function expectClose(actual: Tensor, expected: T, what: string, atol = 1e-5, rtol = 1e-4): void {
  expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
  const a = actual.toArray();
  let worst = 0,
    worstAt = -1;
  for (let i = 0; i < a.length; i++) {
    const e = expected.data[i];
    const excess = Math.abs(a[i] - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= worst)) {
      worst = excess;
      worstAt = i;
    }
  }
  if (worstAt >= 0) throw new Error(`${what}: element ${worstAt} is ${a[worstAt]}, torch gives ${expected.data[worstAt]}`);
}

/** The scalar the reference differentiates: sum(out * cos(arange(numel))). */
export function objective(out: Tensor): Tensor {
  return cz.tidy(() =>
    out
      .mul(
        cz
          .arange(out.numel(), undefined, 1, { dtype: out.dtype })
          .cos()
          .view(...out.shape),
      )
      .sum(),
  );
}
