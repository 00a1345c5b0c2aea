// Hostile weight files, and the lazy API (openWeights) that lets callers look before reading.
//
// Each hostile file is small on disk and is built here (a deflate stream of one repeated piece,
// wrapped in a hand-made zip). It is loaded in a child process (test/io_hostile_runner.mjs, on the
// built dist/), so that a file that aborts or hangs the process fails the test instead of taking
// vitest down; the child reports the error and its own peak RSS, which must stay bounded.
// dist/ must be built first (`npx tsc -p tsconfig.json`; `npm test` does it).
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import * as cz from '../src/index.js';

const PYTHON = '/usr/bin/python3';
const RUNNER = fileURLToPath(new URL('./io_hostile_runner.mjs', import.meta.url));
const MiB = 1 << 20;
/** How much a refused hostile file may add to the child's peak RSS (libtorch alone is ~220 MB). */
const MAX_GROWTH = 300 * MiB;
const MAX_MS = 15_000;

let dir: string;
const F = (name: string) => path.join(dir, name);
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'convzoo-io-hostile-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---- building hostile files

const crc32 = (zlib as unknown as { crc32: (d: Uint8Array, prev?: number) => number }).crc32;

interface Payload {
  data: Buffer;
  size: number;
  crc: number;
}

/**
 * A raw deflate stream of `parts`, each piece repeated `times`. Segments compressed with a full
 * flush are byte-aligned, non-final and independent, so copies of one concatenate into a valid
 * stream: 300 MB of one byte costs ~300 KB and no memory to build.
 */
function deflateRepeated(parts: [Uint8Array, number][]): Payload {
  const segments: Buffer[] = [];
  let size = 0;
  let crc = 0;
  for (const [piece, times] of parts) {
    const segment = zlib.deflateRawSync(piece, { finishFlush: zlib.constants.Z_FULL_FLUSH });
    for (let i = 0; i < times; i++) {
      segments.push(segment);
      crc = crc32(piece, crc);
    }
    size += piece.byteLength * times;
  }
  segments.push(zlib.deflateRawSync(Buffer.alloc(0))); // the final (empty) block
  return { data: Buffer.concat(segments), size, crc };
}

interface ZipItem {
  name: string;
  payload: Payload;
  deflated: boolean;
  declaredSize?: number;
}

/** A zip archive, directory and all, whose sizes say what `declaredSize` says (a lie, if asked). */
function zipArchive(items: ZipItem[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, payload, deflated, declaredSize } of items) {
    const n = Buffer.from(name);
    const fields = (h: Buffer, at: number) => {
      h.writeUInt16LE(deflated ? 8 : 0, at);
      h.writeUInt32LE(payload.crc >>> 0, at + 6);
      h.writeUInt32LE(payload.data.byteLength, at + 10);
      h.writeUInt32LE(declaredSize ?? payload.size, at + 14);
      h.writeUInt16LE(n.byteLength, at + 18);
    };
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    fields(local, 8);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    fields(central, 10);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, payload.data);
    centrals.push(central, n);
    offset += 30 + n.byteLength + payload.data.byteLength;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(items.length, 8);
  eocd.writeUInt16LE(items.length, 10);
  eocd.writeUInt32LE(cd.byteLength, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

// Pickle opcodes, for hand-made data.pkl programs.
const op = (...bytes: number[]) => Buffer.from(bytes);
const int32 = (v: number) => {
  const b = Buffer.alloc(5);
  b[0] = 0x4a;
  b.writeInt32LE(v, 1);
  return b;
}; // BININT
const str = (s: string) => {
  const t = Buffer.from(s);
  const b = Buffer.alloc(5);
  b[0] = 0x58;
  b.writeUInt32LE(t.byteLength, 1);
  return Buffer.concat([b, t]);
}; // BINUNICODE
const global = (module: string, name: string) => Buffer.from(`c${module}\n${name}\n`, 'latin1');
const PROTO2 = op(0x80, 0x02);
const STOP = op(0x2e);

/** torch.save's pickle of {'w': a float32 tensor of `numel` elements in storage '0'}. */
function stateDictPickle(numel: number): Buffer {
  const MARK = op(0x28),
    TUPLE = op(0x74);
  return Buffer.concat([
    PROTO2,
    op(0x7d),
    str('w'),
    global('torch._utils', '_rebuild_tensor_v2'),
    MARK,
    MARK,
    str('storage'),
    global('torch', 'FloatStorage'),
    str('0'),
    str('cpu'),
    int32(numel),
    TUPLE,
    op(0x51), // BINPERSID
    int32(0),
    MARK,
    int32(numel),
    TUPLE,
    MARK,
    int32(1),
    TUPLE,
    op(0x89), // offset, size, stride, requires_grad=False
    global('collections', 'OrderedDict'),
    op(0x29),
    op(0x52), // backward hooks: OrderedDict()
    TUPLE,
    op(0x52),
    op(0x73),
    STOP, // REDUCE, SETITEM
  ]);
}

/** A checkpoint whose data.pkl is `pickle` (deflated), plus optional storages. */
function checkpoint(file: string, pickle: Payload, opts: { declaredSize?: number; storages?: ZipItem[] } = {}): string {
  const bytes = zipArchive([{ name: 'archive/data.pkl', payload: pickle, deflated: true, declaredSize: opts.declaredSize }, ...(opts.storages ?? [])]);
  writeFileSync(F(file), bytes);
  return F(file);
}

/** A data.pkl of PROTO 2, then `body` repeated `times` after an optional `head`, then STOP. */
const flood = (body: number[] | Buffer, times: number, head: number[] = []): Payload => {
  const piece = Buffer.isBuffer(body) ? body : Buffer.from(body);
  // Pieces of ~1 MB keep the stream short; `times` counts repetitions of `body`.
  const perPiece = Math.max(1, Math.floor(1_000_000 / piece.byteLength));
  const big = Buffer.concat(Array(perPiece).fill(piece));
  return deflateRepeated([
    [Buffer.concat([PROTO2, Buffer.from(head)]), 1],
    [big, Math.floor(times / perPiece)],
    [STOP, 1],
  ]);
};

// ---- the child process

interface ChildResult {
  ok: boolean;
  code?: string;
  name?: string;
  message?: string;
  keys?: string[];
  bytes?: number;
  ms: number;
  baseRSS: number;
  maxRSS: number;
}

function runChild(
  mode: 'load' | 'open',
  file: string,
  timeoutMs = 60_000,
): { status: number | null; signal: string | null; stderr: string; result?: ChildResult } {
  const r = spawnSync(process.execPath, [RUNNER, mode, file], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' });
  const last = r.stdout?.trim().split('\n').pop();
  let result: ChildResult | undefined;
  try {
    result = last ? JSON.parse(last) : undefined;
  } catch {
    /* reported below */
  }
  return { status: r.status, signal: r.signal, stderr: `${r.stderr ?? ''}${r.error ? ` (${r.error.message})` : ''}`.slice(-2000), result };
}

const mb = (n: number) => `${(n / MiB).toFixed(0)} MiB`;

/** Runs `file` in a child: it must live, report a ConvzooError `code` matching `message`, fast and in bounded memory. */
function expectRefusedInChild(file: string, code: string, message: RegExp, mode: 'load' | 'open' = 'load'): ChildResult {
  const child = runChild(mode, file);
  expect(child.signal, `the child died by ${child.signal} (a crash, or killed at the timeout): ${child.stderr}`).toBeNull();
  expect(child.status, `child crashed: ${child.stderr}`).toBe(0);
  const r = child.result!;
  expect(r, 'child printed no result').toBeDefined();
  expect(r.ok, 'the hostile file loaded').toBe(false);
  expect(r.name).toBe('ConvzooError');
  expect(r.code, r.message).toBe(code);
  expect(r.message).toMatch(message);
  expect(r.maxRSS - r.baseRSS, `peak RSS ${mb(r.maxRSS)} from ${mb(r.baseRSS)}`).toBeLessThan(MAX_GROWTH);
  expect(r.ms).toBeLessThan(MAX_MS);
  console.log(`${path.basename(file)}: ${r.code} in ${r.ms} ms, peak RSS ${mb(r.maxRSS)} (base ${mb(r.baseRSS)})`);
  return r;
}

// ---- hostile checkpoints

describe('hostile PyTorch checkpoints fail with E_FORMAT in bounded memory and time (child process)', () => {
  it('a 300 MB data.pkl of NONE opcodes in a ~300 KB file (used to abort the process) is refused unread', () => {
    const file = checkpoint('none_flood_300M.pth', flood([0x4e], 300_000_000));
    expectRefusedInChild(file, 'E_FORMAT', /data\.pkl is 300000003 bytes, over the limit of 67108864/);
  });

  it('a data.pkl declaring fewer bytes than it inflates to stops at the declared size', () => {
    const file = checkpoint('none_flood_lying.pth', flood([0x4e], 300_000_000), { declaredSize: 1000 });
    expectRefusedInChild(file, 'E_FORMAT', /inflates to more than the 1000 bytes its directory declares/);
  });

  it('a NONE flood under the data.pkl limit stops at the stack limit', () => {
    expectRefusedInChild(checkpoint('none_flood_60M.pth', flood([0x4e], 60_000_000)), 'E_FORMAT', /stack grows past 1000000 items/);
  });

  it('a MARK flood stops at the MARK limit', () => {
    expectRefusedInChild(checkpoint('mark_flood.pth', flood([0x28], 60_000_000)), 'E_FORMAT', /more than 10000 MARKs open/);
  });

  const budget = /builds more than 64 MiB of objects/;
  it('a MEMOIZE flood stops at the object budget', () => {
    expectRefusedInChild(checkpoint('memoize_flood.pth', flood([0x94], 60_000_000, [0x4e])), 'E_FORMAT', budget);
  });

  it('nested TUPLE1s stop at the object budget', () => {
    expectRefusedInChild(checkpoint('tuple_flood.pth', flood([0x85], 60_000_000, [0x4e])), 'E_FORMAT', budget);
  });

  it('an APPEND flood into one list stops at the object budget', () => {
    expectRefusedInChild(checkpoint('append_flood.pth', flood([0x4e, 0x61], 30_000_000, [0x5d])), 'E_FORMAT', budget);
  });

  it('a SETITEM flood into one dict stops at the object budget', () => {
    // Keys are new empty tuples: distinct objects, so every SETITEM adds an entry.
    expectRefusedInChild(checkpoint('setitem_flood.pth', flood([0x29, 0x4e, 0x73], 20_000_000, [0x7d])), 'E_FORMAT', budget);
  });

  it('a 60 MB integer literal is refused without parsing it', () => {
    const file = checkpoint('int_line.pth', flood([0x31], 60_000_000, [0x49]));
    expectRefusedInChild(file, 'E_FORMAT', /text line longer than 4096 bytes/);
  });

  it('a storage declaring more than deflate can produce from its compressed size is refused before allocating', () => {
    const numel = 256 * MiB; // 1 GiB of float32
    const small = deflateRepeated([[Buffer.alloc(MiB), 1]]); // ~1 KB, honestly 1 MiB
    const file = checkpoint('ratio.pth', deflateRepeated([[stateDictPickle(numel), 1]]), {
      storages: [{ name: 'archive/data/0', payload: small, deflated: true, declaredSize: numel * 4 }],
    });
    const r = expectRefusedInChild(file, 'E_FORMAT', /declares 1073741824 bytes from \d+ compressed, more than deflate's maximum ratio of 1032:1/);
    expect(r.maxRSS - r.baseRSS).toBeLessThan(100 * MiB);
  });

  it('a deflated 256 MiB storage (a ~260 KB deflate bomb) loads, inflated once, straight into its tensor', () => {
    const numel = 64 * MiB; // float32: 256 MiB
    const file = checkpoint('bomb.pth', deflateRepeated([[stateDictPickle(numel), 1]]), {
      storages: [{ name: 'archive/data/0', payload: deflateRepeated([[Buffer.alloc(MiB), 256]]), deflated: true }],
    });
    const child = runChild('load', file);
    expect(child.status, child.stderr).toBe(0);
    const r = child.result!;
    expect(r.ok, r.message).toBe(true);
    expect(r.keys).toEqual(['w']);
    expect(r.bytes).toBe(256 * MiB);
    // The tensor, one 64 MiB chunk and zlib's buffers; inflating whole and then copying took 2-3x the tensor.
    expect(r.maxRSS - r.baseRSS, `peak RSS ${mb(r.maxRSS)} from ${mb(r.baseRSS)}`).toBeLessThan(256 * MiB + 128 * MiB);
    console.log(`bomb.pth: loaded in ${r.ms} ms, peak RSS ${mb(r.maxRSS)} (base ${mb(r.baseRSS)})`);
  });
});

// ---- non-regular files

describe('weights paths that are not regular files', () => {
  it('refuses a FIFO (and a symlink to one) with E_IO instead of blocking forever', () => {
    const fifo = F('weights.fifo');
    const mk = spawnSync('mkfifo', [fifo]);
    expect(mk.status, String(mk.stderr)).toBe(0);
    symlinkSync(fifo, F('link-to-fifo.pth'));
    for (const [mode, file] of [
      ['load', fifo],
      ['open', fifo],
      ['load', F('link-to-fifo.pth')],
    ] as const) {
      const child = runChild(mode, file, 20_000);
      expect(child.signal, `${mode} ${file}: the child hung`).toBeNull();
      expect(child.result?.code, child.result?.message).toBe('E_IO');
      expect(child.result?.message).toContain(`${file} is not a regular file`);
    }
  });

  it('refuses a directory and a character device with E_IO', async () => {
    for (const file of [dir, '/dev/zero']) {
      const err = await cz.openWeights(file).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(cz.ConvzooError);
      expect((err as cz.ConvzooError).code).toBe('E_IO');
      expect((err as cz.ConvzooError).message).toContain(`${file} is not a regular file`);
    }
  });
});

// ---- openWeights: look before reading

describe('openWeights', () => {
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

  let pth: string;
  beforeAll(() => {
    pth = F('wrapped.pth');
    const script = `
import sys, torch
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
sd = {'base': base, 'row': base[1], 'colT': base.t(), 'ids': torch.tensor([1, 2, 3]), 'big': torch.zeros(1000, 1000)}
torch.save({'state_dict': sd, 'epoch': 3}, sys.argv[1])
`;
    const r = spawnSync(PYTHON, ['-c', script, pth], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`torch.save failed: ${r.stderr}`);
  });

  it("lists a checkpoint's tensors without reading any, then reads a subset with shared storage kept", async () => {
    const before = cz.memory();
    const w = await cz.openWeights(pth);
    try {
      expect(w.entries).toEqual([
        { name: 'base', shape: [3, 4], dtype: 'float32' },
        { name: 'row', shape: [4], dtype: 'float32' },
        { name: 'colT', shape: [4, 3], dtype: 'float32' },
        { name: 'ids', shape: [3], dtype: 'int64' },
        { name: 'big', shape: [1000, 1000], dtype: 'float32' },
      ]);
      expect(w.metadata).toEqual({});
      // Nothing was read or allocated.
      expect(cz.memory().tensors).toBe(before.tensors);
      expect(cz.memory().bytes).toBe(before.bytes);

      const r = await w.read(['colT', 'row']);
      try {
        expect(Object.keys(r)).toEqual(['row', 'colT']); // file order
        expect(r.row.toArray()).toEqual([4, 5, 6, 7]);
        // Only the 48-byte storage behind row and colT was read, not 'big' (4 MB).
        expect(cz.memory().bytes - before.bytes).toBeLessThanOrEqual(2 * 48);
        r.row.fill_(-1); // row and colT still view one storage
        expect(r.colT.toArray()).toEqual([0, -1, 8, 1, -1, 9, 2, -1, 10, 3, -1, 11]);
      } finally {
        disposeAll(r);
      }

      // Everything, as load() returns it.
      const all = await w.read();
      const loaded = await cz.load(pth);
      try {
        expect(Object.keys(all)).toEqual(w.entries.map((e) => e.name));
        expect(Object.keys(loaded)).toEqual(Object.keys(all));
        for (const k of Object.keys(all)) expect(loaded[k].toArray(), k).toEqual(all[k].toArray());
      } finally {
        disposeAll(all);
        disposeAll(loaded);
      }

      const missing = await w.read(['base', 'nope']).then(
        () => null,
        (e: unknown) => e,
      );
      expect((missing as cz.ConvzooError).code).toBe('E_NOT_FOUND');
      expect((missing as cz.ConvzooError).message).toMatch(/no tensor 'nope'/);
      // A caller editing entries changes nothing.
      w.entries[0].shape.push(9);
      expect(
        await cz.openWeights(pth).then(async (x) => {
          try {
            return x.entries[0].shape;
          } finally {
            await x.close();
          }
        }),
      ).toEqual([3, 4]);
    } finally {
      await w.close();
    }
    await w.close(); // twice is harmless
    const closed = await w.read().then(
      () => null,
      (e: unknown) => e,
    );
    expect((closed as cz.ConvzooError).code).toBe('E_ARG');
    expect((closed as cz.ConvzooError).message).toMatch(/closed/);
  });

  it('applies {key} like load, and reads safetensors with metadata', async () => {
    const k = await cz.openWeights(pth, { key: 'state_dict' });
    try {
      expect(k.entries.map((e) => e.name)).toEqual(['base', 'row', 'colT', 'ids', 'big']);
    } finally {
      await k.close();
    }

    const a = cz.ones([2, 3]);
    const b = cz.tensor([1, 2], undefined, { dtype: 'int32' });
    const file = F('small.safetensors');
    try {
      await cz.save(file, { 'model.a': a, 'model.b': b, 'other.c': a }, { format: 'pt' });
    } finally {
      a.dispose();
      b.dispose();
    }
    const w = await cz.openWeights(file, { key: 'model' });
    try {
      expect(w.metadata).toEqual({ format: 'pt' });
      expect(w.entries).toEqual([
        { name: 'a', shape: [2, 3], dtype: 'float32' },
        { name: 'b', shape: [2], dtype: 'int32' },
      ]);
      const r = await w.read(['b']);
      try {
        expect(Object.keys(r)).toEqual(['b']);
        expect(r.b.toArray()).toEqual([1, 2]);
      } finally {
        disposeAll(r);
      }
    } finally {
      await w.close();
    }
  });

  it('fails on a hostile file at open time, before anything is read', async () => {
    const file = F('evil_open.pth');
    writeFileSync(
      file,
      zipArchive([{ name: 'archive/data.pkl', payload: deflateRepeated([[Buffer.concat([PROTO2, global('posix', 'system'), STOP]), 1]]), deflated: true }]),
    );
    const err = await cz.openWeights(file).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as cz.ConvzooError).code).toBe('E_UNSAFE_PICKLE');
  });
});
