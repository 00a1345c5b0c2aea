// The numerical oracle of zoo parts 2 and 3 (../shared/fixtures/oracle, copied to test/fixtures/oracle):
// fill every parameter and buffer by FILL.md's deterministic rule, run the fixture's 2 inputs in float64
// in eval mode, and compare keys (order, shapes, dtypes), the parameter count and the logits with the
// reference's (timm, torchvision, the papers' official code).
import { readFileSync } from 'node:fs';
import { describe, test, expect } from 'vitest';
import path from 'node:path';
import * as cz from '../src/index.js';

export interface OracleFixture {
  id: string;
  reference: { library: string; version: string; commit_or_url: string; constructor: string };
  salt: string;
  input: [number, number, number, number];
  numClasses: number;
  params: number;
  dtype: 'float64';
  keys: [string, number[], string][];
  logits: number[][];
}

export const ORACLE_DIR = path.resolve('test/fixtures/oracle');
/** FILL.md's tolerance: max|a - b| / max|b| over the logits. */
export const ORACLE_TOLERANCE = 1e-6;

export function loadFixture(id: string): OracleFixture {
  return JSON.parse(readFileSync(path.join(ORACLE_DIR, `${id}.json`), 'utf8')) as OracleFixture;
}

/** FNV-1a over the UTF-8 bytes of s. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 16777619) >>> 0;
  return h;
}

/** The hash mix of element index i, as a double in [-1, 1). */
export function mix(i: number, h: number): number {
  let x = (i ^ h) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  return (x / 4294967296) * 2 - 1;
}

/** The values FILL.md gives the tensor `name` of this shape and dtype (float32, or zeros for integers). */
export function fillValues(salt: string, name: string, shape: number[], dtype: string): Float32Array | null {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (dtype !== 'float32' || name.endsWith('num_batches_tracked')) return null; // rule 1: zeros
  const h = fnv1a32(`${salt}:${name}`);
  const out = new Float32Array(numel);
  let value: (u: number) => number;
  if (name.endsWith('running_var')) value = (u) => 0.75 + 0.25 * u;
  else if (name.endsWith('running_mean')) value = (u) => 0.1 * u;
  else if (name.endsWith('gain')) value = (u) => 1 + 0.1 * u;
  else if (shape.length <= 1) value = /(weight|gamma|scale)$/.test(name) ? (u) => 1 + 0.1 * u : (u) => 0.1 * u;
  else {
    const k = Math.sqrt(6 / (numel / shape[0]));
    value = (u) => u * k;
  }
  for (let i = 0; i < numel; i++) out[i] = value(mix(i, h));
  return out;
}

/** The fixture's input: [2, 3, H, W] float32 by the rule, upcast to float64. */
export function oracleInput(fx: OracleFixture): cz.Tensor {
  const n = fx.input.reduce((a, b) => a * b, 1);
  const h = fnv1a32(`${fx.salt}:input`);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = mix(i, h);
  return cz.tidy(() => cz.fromBytes(new Uint8Array(x.buffer), fx.input, 'float32').to('float64'));
}

/** Fills every tensor of the model's state dict by the rule (in float32, as the reference does). */
export function fillModel(model: cz.nn.Module, salt: string): void {
  const sd = model.stateDict();
  const filled: Record<string, cz.Tensor> = {};
  try {
    for (const [name, t] of Object.entries(sd)) {
      const v = fillValues(salt, name, t.shape, t.dtype);
      filled[name] = v ? cz.fromBytes(new Uint8Array(v.buffer), t.shape, 'float32') : cz.zeros(t.shape, { dtype: t.dtype });
    }
    model.loadStateDict(filled);
  } finally {
    for (const t of [...Object.values(sd), ...Object.values(filled)]) t.dispose();
  }
}

export interface OracleResult {
  keys: [string, number[], string][];
  params: number;
  /** max|a - b| / max|b| of the float64 logits against the fixture's. */
  relError: number;
}

/** Runs a fixture against a model built for it (numClasses as the fixture). */
export function runOracle(fx: OracleFixture, model: cz.ClassifierModel): OracleResult {
  const sd = model.stateDict();
  const keys = Object.entries(sd).map(([k, t]) => [k, t.shape, t.dtype] as [string, number[], string]);
  for (const t of Object.values(sd)) t.dispose();
  const params = model.numParameters();
  fillModel(model, fx.salt);
  model.to('float64');
  model.eval();
  const x = oracleInput(fx);
  const logits = cz.inferenceMode(() => cz.tidy(() => model.forward(x).to('float64').data() as Float64Array));
  x.dispose();
  const want = fx.logits.flat();
  let maxDiff = 0,
    maxRef = 0;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(logits[i] - want[i]));
    maxRef = Math.max(maxRef, Math.abs(want[i]));
  }
  return { keys, params, relError: logits.length === want.length ? maxDiff / maxRef : Number.POSITIVE_INFINITY };
}

/**
 * One test per fixture id: the registered model (built for the fixture's class count) has the fixture's
 * keys in order with shapes and dtypes, its exact parameter count (also the registry's), and float64
 * logits within ORACLE_TOLERANCE.
 */
export function oracleTests(title: string, ids: string[]): void {
  describe(title, () => {
    for (const id of ids) {
      test(`${id}: keys, parameter count and float64 logits against ${loadFixture(id).reference.library}`, () => {
        const fx = loadFixture(id);
        const model = cz.buildModel(id, { numClasses: fx.numClasses });
        try {
          const r = runOracle(fx, model);
          expect(r.keys).toEqual(fx.keys);
          expect(r.params).toBe(fx.params);
          expect(cz.modelMeta(id).params).toBe(fx.params);
          console.log(`oracle ${id}@${fx.input[2]}: relError ${r.relError.toExponential(2)}`);
          expect(r.relError).toBeLessThan(ORACLE_TOLERANCE);
        } finally {
          model.dispose();
        }
      }, 120_000);
    }
  });
}
