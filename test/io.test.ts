// Weight files: PyTorch checkpoints written by torch.save (tools/make_weight_fixtures.py) and
// safetensors, read and written by cz.load / cz.save.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as cz from '../src/index.js';
import { _setChunkBytes } from '../src/io/source.js';

const PYTHON = '/usr/bin/python3';
const TOOL = fileURLToPath(new URL('../tools/make_weight_fixtures.py', import.meta.url));

interface Described {
  dtype: string;
  shape: number[];
  stride: number[];
  offset: number;
  values: (number | string)[];
}
let dir: string;
let expected: any;
const F = (name: string) => path.join(dir, name);

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'convzoo-io-'));
  const r = spawnSync(PYTHON, [TOOL, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`make_weight_fixtures.py failed: ${r.stderr}`);
  expected = JSON.parse(readFileSync(F('expected.json'), 'utf8'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Every case must leave no tensor behind.
let liveBefore = 0;
beforeEach(() => {
  liveBefore = cz.memory().tensors;
});
afterEach(() => {
  expect(cz.memory().tensors).toBe(liveBefore);
});

const disposeAll = (r: Record<string, cz.Tensor>) => {
  for (const t of Object.values(r)) t.dispose();
};

/** Values as the fixture JSON writes them: int64 as decimal strings, bool as 0/1. */
function valuesOf(t: cz.Tensor): (number | string)[] {
  const d = t.data();
  if (d instanceof BigInt64Array) return Array.from(d, (v) => v.toString());
  return Array.from(d as ArrayLike<number>);
}

function expectMatches(t: cz.Tensor | undefined, e: Described, name: string): void {
  expect(t, name).toBeDefined();
  expect(t!.dtype, name).toBe(e.dtype);
  expect(t!.shape, name).toEqual(e.shape);
  expect(t!.strides, name).toEqual(e.stride);
  expect(valuesOf(t!), name).toEqual(e.values);
}

function expectRecord(r: Record<string, cz.Tensor>, exp: Record<string, Described>): void {
  expect(Object.keys(r)).toEqual(Object.keys(exp));
  for (const [k, e] of Object.entries(exp)) expectMatches(r[k], e, k);
}

async function expectError(p: Promise<unknown>, code: cz.ErrorCode, message: RegExp): Promise<cz.ConvzooError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(cz.ConvzooError);
  expect((err as cz.ConvzooError).code).toBe(code);
  expect((err as cz.ConvzooError).message).toMatch(message);
  return err as cz.ConvzooError;
}

describe('PyTorch checkpoints (zip format)', () => {
  it('loads every dtype, a 0-d and an empty tensor from an OrderedDict state_dict', async () => {
    const r = await cz.load(F('dtypes.pth'));
    try {
      expectRecord(r, expected.dtypes);
      expect(r.scalar.shape).toEqual([]);
      expect(r.scalar.item()).toBe(3.5);
      expect(r.empty.numel()).toBe(0);
      // int64 beyond 2^53 survives exactly.
      expect((r.i64.data() as BigInt64Array)[1]).toBe(2n ** 62n + 1n);
    } finally {
      disposeAll(r);
    }
  });

  it('keeps shared storages shared and views strided like torch', async () => {
    const r = await cz.load(F('views.pth'));
    try {
      expectRecord(r, expected.views);
      expect(r.colT.isContiguous()).toBe(false);
      expect(r.cols.isContiguous()).toBe(false);
      // One storage behind base, row, colT and cols: a write through one view shows in the others.
      r.row.fill_(-1);
      expect(r.base.toArray()).toEqual([0, 1, 2, 3, -1, -1, -1, -1, 8, 9, 10, 11]);
      expect(r.colT.toArray()).toEqual([0, -1, 8, 1, -1, 9, 2, -1, 10, 3, -1, 11]);
      expect(r.cols.toArray()).toEqual([1, 2, -1, -1, 9, 10]);
      r.tied_a.fill_(5);
      expect(r.tied_b.toArray()).toEqual([5, 5, 5]);
      expect(r.other.toArray()).toEqual([1, 1, 1, 1]);
    } finally {
      disposeAll(r);
    }
  });

  it("loads torchvision resnet18's state_dict in order, and the same from a buffer", async () => {
    const exp = expected.resnet18;
    for (const r of [await cz.load(F('resnet18.pth')), await cz.loadBuffer(readFileSync(F('resnet18.pth')))]) {
      try {
        expect(Object.keys(r)).toEqual(exp.keys);
        for (const k of exp.keys) {
          const e = exp.tensors[k];
          const t = r[k];
          expect(t.dtype, k).toBe(e.dtype);
          expect(t.shape, k).toEqual(e.shape);
          const d = t.data();
          let sum = 0;
          let wsum = 0;
          for (let i = 0; i < d.length; i++) {
            const v = Number(d[i]);
            sum += v;
            wsum += v * ((i % 7) + 1);
          }
          const tol = (x: number) => 1e-9 * Math.max(1, Math.abs(x));
          expect(Math.abs(sum - e.sum), k).toBeLessThan(tol(e.sum) + 1e-6);
          expect(Math.abs(wsum - e.wsum), k).toBeLessThan(tol(e.wsum) + 1e-6);
        }
      } finally {
        disposeAll(r);
      }
    }
  });

  it('reads archives re-packed with deflate and as zip64', async () => {
    for (const f of ['deflated.pth', 'zip64.pth']) {
      const r = await cz.load(F(f));
      try {
        expectRecord(r, expected.dtypes);
      } finally {
        disposeAll(r);
      }
    }
  });

  it("returns a bare saved tensor under the key ''", async () => {
    const r = await cz.load(F('bare.pth'));
    try {
      expectRecord(r, { '': expected.bare });
    } finally {
      disposeAll(r);
    }
  });
});

describe('PyTorch checkpoints (legacy format)', () => {
  it('loads dtypes, views and shared storages written with _use_new_zipfile_serialization=False', async () => {
    const r = await cz.load(F('legacy.pth'));
    try {
      expectRecord(r, expected.legacy);
      r.row.fill_(-1);
      expect(r.colT.toArray()).toEqual([0, -1, 8, 1, -1, 9, 2, -1, 10, 3, -1, 11]);
    } finally {
      disposeAll(r);
    }
  });

  it('refuses a truncated legacy file', async () => {
    await expectError(cz.load(F('legacy_truncated.pth')), 'E_FORMAT', /truncated/);
  });
});

describe('nested checkpoints', () => {
  it('unwraps a single dict of tensors and skips ints, strings, None, big ints and tuples', async () => {
    const r = await cz.load(F('nested.pth'));
    try {
      expectRecord(r, expected.nested);
    } finally {
      disposeAll(r);
    }
  });

  it('flattens several tensor-holding parts with dotted keys', async () => {
    const r = await cz.load(F('multi.pth'));
    try {
      const e = expected.multi;
      const flat: Record<string, Described> = {};
      for (const part of ['model', 'model_ema', 'optimizer']) for (const [k, v] of Object.entries(e[part])) flat[`${part}.${k}`] = v as Described;
      expectRecord(r, flat);
    } finally {
      disposeAll(r);
    }
  });

  it('picks one part with {key}, by name or by dotted path', async () => {
    const m = await cz.load(F('multi.pth'), { key: 'model_ema' });
    try {
      expectRecord(m, expected.multi.model_ema);
    } finally {
      disposeAll(m);
    }
    const s = await cz.load(F('multi.pth'), { key: 'optimizer.state.0' });
    try {
      expectRecord(s, { step: expected.multi.optimizer['state.0.step'], exp_avg: expected.multi.optimizer['state.0.exp_avg'] });
    } finally {
      disposeAll(s);
    }
    const n = await cz.load(F('nested.pth'), { key: 'state_dict' });
    try {
      expectRecord(n, expected.nested);
    } finally {
      disposeAll(n);
    }
    await expectError(cz.load(F('multi.pth'), { key: 'state_dict' }), 'E_NOT_FOUND', /'state_dict'.*'model', 'model_ema', 'optimizer', 'epoch'/);
    await expectError(cz.load(F('multi.pth'), { key: 'epoch' }), 'E_NOT_FOUND', /'epoch' holds no tensors/);
  });
});

describe('weights-only unpickling', () => {
  it('refuses a pickle that calls os.system, without running it', async () => {
    await expectError(cz.load(F('evil_system.pth')), 'E_UNSAFE_PICKLE', /global 'posix\.system' is not allowed/);
    expect(existsSync(F('PWNED'))).toBe(false);
  });

  it('refuses REDUCE of an allowed class that is not a rebuild function', async () => {
    await expectError(cz.load(F('evil_reduce.pth')), 'E_UNSAFE_PICKLE', /REDUCE of torch\.FloatStorage/);
  });

  it('refuses BUILD on a tensor, NEWOBJ and STACK_GLOBAL of builtins.eval', async () => {
    await expectError(cz.load(F('evil_build.pth')), 'E_UNSAFE_PICKLE', /BUILD on a tensor/);
    await expectError(cz.load(F('evil_newobj.pth')), 'E_UNSAFE_PICKLE', /opcode NEWOBJ/);
    await expectError(cz.load(F('evil_stack_global.pth')), 'E_UNSAFE_PICKLE', /global 'builtins\.eval'/);
    // The same hand-made layout without the offending opcode loads.
    const ok = await cz.load(F('handmade_ok.pth'));
    try {
      expect(ok[''].toArray()).toEqual([1, 2]);
    } finally {
      disposeAll(ok);
    }
  });

  it('names an unsupported storage type (complex) with E_DTYPE', async () => {
    await expectError(cz.load(F('complex.pth')), 'E_DTYPE', /torch\.ComplexFloatStorage are not supported/);
  });

  it('refuses a tensor view that reaches past its storage', async () => {
    await expectError(cz.load(F('bad_view.pth')), 'E_FORMAT', /needs 3 elements but its storage holds 2/);
  });
});

describe('broken PyTorch files', () => {
  it('refuses a truncated archive', async () => {
    await expectError(cz.load(F('truncated.pth')), 'E_FORMAT', /truncated/);
  });

  it('refuses a storage whose CRC-32 does not match', async () => {
    await expectError(cz.load(F('corrupt.pth')), 'E_FORMAT', /CRC-32/);
  });

  it('gives E_FORMAT for every prefix of a small checkpoint, never a crash', async () => {
    const bytes = readFileSync(F('dtypes.pth'));
    for (let n = 0; n < bytes.length; n += 97) {
      await expectError(cz.loadBuffer(bytes.subarray(0, n)), 'E_FORMAT', /./);
    }
    const legacy = readFileSync(F('legacy.pth'));
    for (let n = 0; n < legacy.length; n += 53) {
      await expectError(cz.loadBuffer(legacy.subarray(0, n)), 'E_FORMAT', /./);
    }
  });

  it('reports a missing file as E_NOT_FOUND', async () => {
    await expectError(cz.load(F('nope.pth')), 'E_NOT_FOUND', /no such file/);
  });
});

describe('large files, in chunks', () => {
  // Files over 64 MiB are read and written in pieces; a small chunk size runs those paths here.
  let prev = 0;
  beforeAll(() => {
    prev = _setChunkBytes(4096);
  });
  afterAll(() => {
    _setChunkBytes(prev);
  });
  const sameBytes = (a: cz.Tensor, b: cz.Tensor) => Buffer.from(a.bytes()).equals(Buffer.from(b.bytes()));

  it('loads zip, zip64, deflated and legacy files chunk by chunk', async () => {
    for (const [f, exp] of [
      ['views.pth', expected.views],
      ['zip64.pth', expected.dtypes],
      ['deflated.pth', expected.dtypes],
      ['legacy.pth', expected.legacy],
    ]) {
      const r = await cz.load(F(f));
      try {
        expectRecord(r, exp);
      } finally {
        disposeAll(r);
      }
    }
    await expectError(cz.load(F('corrupt.pth')), 'E_FORMAT', /CRC-32/);
  });

  it('round-trips resnet18 through safetensors chunk by chunk, views included', async () => {
    _setChunkBytes(prev);
    const whole = await cz.load(F('resnet18.pth'));
    _setChunkBytes(1 << 20); // resnet18's tensors reach 9.4 MB: several chunks each
    const file = F('chunked.safetensors');
    const owned: Record<string, cz.Tensor> = {};
    try {
      const r = await cz.load(F('resnet18.pth'));
      Object.assign(owned, r);
      expect(Object.keys(whole).every((k) => sameBytes(whole[k], r[k]))).toBe(true);
      const views = await cz.load(F('views.pth'));
      for (const [k, t] of Object.entries(views)) owned[`views.${k}`] = t;
      const big = cz.randn([2000, 300]);
      owned.big = big;
      owned.bigT = big.t(); // 2.4 MB, non-contiguous: written in row blocks
      await cz.save(file, owned);
      expect(Buffer.from(cz.saveBuffer(owned)).equals(readFileSync(file))).toBe(true);
      const back = await cz.load(file);
      try {
        expect(Object.keys(back).sort()).toEqual(Object.keys(owned).sort());
        for (const [k, t] of Object.entries(owned)) expect(sameBytes(back[k], t), k).toBe(true);
      } finally {
        disposeAll(back);
      }
    } finally {
      disposeAll(whole);
      disposeAll(owned);
      _setChunkBytes(4096);
    }
  });
});

// ---- safetensors

/** A safetensors file from a header (object or raw text) and data; `len` overrides the length field. */
function st(header: unknown, data: Uint8Array = new Uint8Array(0), len?: bigint): Uint8Array {
  const json = header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, len ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors', () => {
  it('reads a file written by hand in Python, with metadata', async () => {
    const { tensors, metadata } = await cz.loadWithMetadata(F('hand.safetensors'));
    try {
      expect(metadata).toEqual(expected.hand.metadata);
      const exp: Record<string, Described> = expected.hand.tensors;
      // Contiguous copies: strides are whatever contiguous means, values and shapes are torch's.
      for (const [k, e] of Object.entries(exp)) expectMatches(tensors[k], e, k);
      expect(Object.keys(tensors).sort()).toEqual(Object.keys(exp).sort());
    } finally {
      disposeAll(tensors);
    }
  });

  it('round-trips every dtype, a view, a 0-d and an empty tensor, with metadata', async () => {
    const src = await cz.load(F('dtypes.pth'));
    const views = await cz.load(F('views.pth'));
    const file = F('round.safetensors');
    try {
      const record = { ...src, colT: views.colT, 'odd name/with.dots': views.cols };
      await cz.save(file, record, { format: 'pt', note: 'héllo' });
      // Nothing but the target is left behind (no temporary file).
      expect(readdirSync(dir).filter((f) => f.includes('round'))).toEqual(['round.safetensors']);
      const { tensors, metadata } = await cz.loadWithMetadata(file);
      try {
        expect(metadata).toEqual({ format: 'pt', note: 'héllo' });
        expect(Object.keys(tensors).sort()).toEqual(Object.keys(record).sort());
        for (const [k, t] of Object.entries(record)) {
          expect(tensors[k].dtype, k).toBe(t.dtype);
          expect(tensors[k].shape, k).toEqual(t.shape);
          expect(valuesOf(tensors[k]), k).toEqual(valuesOf(t));
        }
      } finally {
        disposeAll(tensors);
      }

      // An independent reader (Python, struct + json) sees the same tensors.
      const r = spawnSync(PYTHON, [TOOL, '--read-safetensors', file], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const py = JSON.parse(r.stdout);
      expect(py.__metadata__).toEqual({ format: 'pt', note: 'héllo' });
      for (const [k, t] of Object.entries(record)) {
        expect(py.tensors[k].shape, k).toEqual(t.shape);
        expect(py.tensors[k].values, k).toEqual(valuesOf(t));
      }

      // Saving again replaces the file; saveBuffer gives the same bytes.
      await cz.save(file, { only: src.f32 });
      const again = await cz.load(file);
      try {
        expect(Object.keys(again)).toEqual(['only']);
      } finally {
        disposeAll(again);
      }
      expect(Buffer.from(cz.saveBuffer({ only: src.f32 })).equals(readFileSync(file))).toBe(true);
    } finally {
      disposeAll(src);
      disposeAll(views);
    }
  });

  it('aligns the data and orders tensors like the reference writer', () => {
    const a = cz.tensor([1, 2, 3], undefined, { dtype: 'int8' });
    const b = cz.tensor([1.5], undefined, { dtype: 'float64' });
    try {
      const bytes = cz.saveBuffer({ a, b });
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      expect((8 + n) % 8).toBe(0);
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
      expect(header.b.data_offsets).toEqual([0, 8]);
      expect(header.a.data_offsets).toEqual([8, 11]);
      expect(header.__metadata__).toBeUndefined();
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('selects a key prefix with {key}', async () => {
    const w = cz.ones([2]);
    const v = cz.zeros([1]);
    try {
      const bytes = cz.saveBuffer({ 'model.w': w, 'other.v': v });
      const r = await cz.loadBuffer(bytes, { key: 'model' });
      try {
        expect(Object.keys(r)).toEqual(['w']);
      } finally {
        disposeAll(r);
      }
      await expectError(cz.loadBuffer(bytes, { key: 'nothing' }), 'E_NOT_FOUND', /'nothing\.'/);
    } finally {
      w.dispose();
      v.dispose();
    }
  });

  it('refuses bad arguments to save', async () => {
    const t = cz.ones([1]);
    try {
      await expectError(cz.save(F('x.safetensors'), { __metadata__: t }), 'E_ARG', /reserved/);
      await expectError(cz.save(F('x.safetensors'), { t }, { n: 1 as unknown as string }), 'E_ARG', /metadata/);
      await expectError(cz.save(F('x.safetensors'), { t: 3 as unknown as cz.Tensor }), 'E_ARG', /not a tensor/);
      await expectError(cz.save(F('no/such/dir/x.safetensors'), { t }), 'E_NOT_FOUND', /x\.safetensors/);
      expect(existsSync(F('x.safetensors'))).toBe(false);
    } finally {
      t.dispose();
    }
  });

  const f32 = (n: number) => new Uint8Array(4 * n);
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /too short/],
    ['shorter than the length field', new Uint8Array(5), /too short/],
    ['header length over 100 MB', st({}, new Uint8Array(0), 100_000_001n), /over the format's limit/],
    ['header length near 2^64', st({}, new Uint8Array(0), 2n ** 64n - 1n), /over the format's limit/],
    ['header past the end of the file', st({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1), 500n), /past the end/],
    ['invalid JSON', st('{"a": {"dtype": "F32",', f32(1)), /not valid JSON/],
    ['JSON that is not an object', st('[1, 2, 3]'), /not valid JSON|not a JSON object/],
    ['invalid UTF-8', st(Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), /not valid JSON/],
    ['unknown dtype', st({ a: { dtype: 'U16', shape: [2], data_offsets: [0, 4] } }, f32(1)), /dtype 'U16' is not supported/],
    ['missing dtype', st({ a: { shape: [1], data_offsets: [0, 4] } }, f32(1)), /dtype missing/],
    ['negative shape', st({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), /shape must be/],
    ['fractional offset', st({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4.5] } }, f32(1)), /data_offsets must be/],
    ['three offsets', st({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, f32(1)), /data_offsets must be/],
    ['end before begin', st({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, f32(1)), /end before they begin/],
    ['byte length not shape x dtype', st({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2)), /needs 12 bytes.*span 8/],
    ['shape product overflowing 64 bits', st({ a: { dtype: 'U8', shape: [2 ** 32, 2 ** 32], data_offsets: [0, 0] } }), /needs 18446744073709551616 bytes/],
    ['first tensor not at 0', st({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2)), /leaves a gap/],
    [
      'a gap between tensors',
      st({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, f32(3)),
      /'b' leaves a gap/,
    ],
    [
      'overlapping tensors',
      st({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2)),
      /overlaps/,
    ],
    [
      'identical offsets',
      st({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1)),
      /overlaps/,
    ],
    ['data past the end (truncated)', st({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)), /truncated/],
    ['trailing bytes', st({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), /4 trailing bytes/],
    [
      'metadata with a non-string value',
      st({ __metadata__: { n: 1 }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1)),
      /__metadata__ must map strings/,
    ],
  ];
  for (const [what, bytes, message] of cases) {
    it(`refuses a malformed file: ${what}`, async () => {
      await expectError(cz.loadBuffer(bytes), 'E_FORMAT', message);
    });
  }

  it('accepts the edge cases the format allows: no tensors, empty tensors, null metadata', async () => {
    const none = await cz.loadBuffer(st({}));
    expect(none).toEqual({});
    const r = await cz.loadBuffer(
      st(
        { __metadata__: null, e: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] }, a: { dtype: 'I8', shape: [2], data_offsets: [0, 2] } },
        new Uint8Array([1, 255]),
      ),
    );
    try {
      expect(r.e.shape).toEqual([0, 3]);
      expect(r.a.toArray()).toEqual([1, -1]);
    } finally {
      disposeAll(r);
    }
  });

  it('gives E_FORMAT for random bytes and every truncation of a valid file', async () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 24;
    };
    for (let trial = 0; trial < 50; trial++) {
      const bytes = Uint8Array.from({ length: 1 + rand() * 4 }, rand);
      await expectError(cz.loadBuffer(bytes), 'E_FORMAT', /./);
    }
    const good = readFileSync(F('hand.safetensors'));
    for (let n = 0; n < good.length; n += 7) await expectError(cz.loadBuffer(good.subarray(0, n)), 'E_FORMAT', /./);
    const file = F('cut.safetensors');
    writeFileSync(file, good.subarray(0, good.length - 3));
    await expectError(cz.load(file), 'E_FORMAT', /truncated/);
  });

  it('cannot be tricked into setting a prototype by a __proto__ key', async () => {
    const r = await cz.loadBuffer(st('{"__proto__": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}', new Uint8Array([7])));
    try {
      expect(Object.getPrototypeOf(r)).toBe(Object.prototype);
      expect(Object.keys(r)).toEqual(['__proto__']);
      expect((Object.getOwnPropertyDescriptor(r, '__proto__')!.value as cz.Tensor).toArray()).toEqual([7]);
    } finally {
      disposeAll(r);
    }
  });
});
