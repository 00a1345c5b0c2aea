// The oracle's fill rule against FILL.md's worked example, so that a model fixture that fails points at
// the model, not at the harness.
import { describe, it, expect } from 'vitest';
import { fnv1a32, fillValues, mix, oracleInput, type OracleFixture } from './oracle.js';

const SALT = 'convzoo-public';
const close = (a: ArrayLike<number>, b: number[]) => b.forEach((v, i) => expect(a[i]).toBeCloseTo(v, 8));

describe('the oracle fill rule (FILL.md worked example)', () => {
  it('hashes as FILL.md says', () => {
    expect(fnv1a32('')).toBe(2166136261);
    expect(fnv1a32('a')).toBe(3826002220);
    expect(fnv1a32(`${SALT}:features.conv0.weight`)).toBe(2963533692);
    const h = fnv1a32(`${SALT}:features.conv0.weight`);
    close(
      [0, 1, 2, 3].map((i) => mix(i, h)),
      [0.696476738, 0.676219076, 0.155000865, -0.605186678],
    );
  });

  it('fills each kind of tensor by its rule', () => {
    close(fillValues(SALT, 'features.conv0.weight', [64, 3, 7, 7], 'float32')!, [0.140709549, 0.136616886, 0.031314902, -0.122266173]);
    close(fillValues(SALT, 'features.norm0.running_var', [64], 'float32')!, [0.954070568, 0.697950721, 0.640094757, 0.645238578]);
    close(fillValues(SALT, 'features.norm0.weight', [64], 'float32')!, [1.01426113, 1.01618326, 0.927431405, 1.02182674]);
    close(fillValues(SALT, 'features.norm0.bias', [64], 'float32')!, [-0.0922379717, -0.00109989883, -0.0541193821, 0.00598206557]);
    close(fillValues(SALT, 'stem.conv1.gain', [16, 1, 1, 1], 'float32')!, [0.946511984, 0.979216874, 1.0753541, 1.07921565]);
    expect(fillValues(SALT, 'features.norm0.num_batches_tracked', [], 'int64')).toBeNull();
  });

  it('makes the input', () => {
    const x = oracleInput({ salt: SALT, input: [2, 3, 4, 4] } as OracleFixture);
    close(x.data() as Float64Array, [0.0793783516, -0.313410431, 0.0508323684, 0.480267495]);
    x.dispose();
  });
});
