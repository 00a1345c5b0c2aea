// The torchvision reference shared by the per-family model tests (test/models_*.test.ts).
// tools/tv_reference.py (run once per test file as a server, one model at a time, one model ahead of
// the test) builds torchvision's model with a fixed seed and torch.saves its state dict, an input,
// eval-mode logits, train-mode logits and the BN running statistics after one train-mode forward.
// parityTests() checks convzoo's state-dict keys, shapes and dtypes (in order) and parameter counts,
// then loads the same file with cz.load and compares the outputs and statistics.
// Without /usr/bin/python3, torch or torchvision these tests fail and say what to install: a parity
// test that silently skips proves nothing.
import { describe, test, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cz from '../../src/index.js';
import type { Tensor } from '../../src/index.js';

export const PY = '/usr/bin/python3';
const SCRIPT = new URL('../../tools/tv_reference.py', import.meta.url).pathname;

/** Fails every test of the file that leaks a tensor. */
export function checkLeaks(): void {
  let live = 0;
  beforeEach(() => {
    live = cz.memory().tensors;
  });
  afterEach(() => {
    expect(cz.memory().tensors, 'tensors leaked by this test').toBe(live);
  });
}

/**
 * Throws, saying what to install, unless `python` can import torch and torchvision. Returns
 * torchvision's version.
 */
export function requireTorchvision(python = PY): string {
  const r = spawnSync(python, ['-c', 'import torch, torchvision; print(torchvision.__version__)'], { encoding: 'utf8', timeout: 120_000 });
  if (r.status === 0) return r.stdout.trim();
  const why = r.error
    ? `${python} could not be run (${r.error.message})`
    : `${python} cannot import torch and torchvision:\n${(r.stderr ?? '').trim().split('\n').slice(-3).join('\n')}`;
  throw new Error(`The torchvision parity tests need ${python} with torch and torchvision 0.14 (Debian/Ubuntu: apt install python3-torchvision): ${why}`);
}

// ---- helpers

/** Frees a model's parameters and buffers (modules have no other tensors). */
export function disposeModel(m: cz.nn.Module): void {
  for (const t of [...m.parameters(), ...m.buffers()]) t.dispose();
}

export function build<T extends cz.ClassifierModel = cz.ClassifierModel>(id: string, opts: Record<string, unknown> = {}): T {
  return cz.buildModel(id, opts) as T;
}

/** max |a - b| / max |b| */
export function relMaxDiff(a: Tensor, b: Tensor): number {
  return cz.tidy(() => {
    expect(a.shape).toEqual(b.shape);
    return a.sub(b).abs().max().item() / Math.max(b.abs().max().item(), 1e-12);
  });
}

export function stateSpec(m: cz.nn.Module): { key: string; shape: number[]; dtype: string }[] {
  const sd = m.stateDict();
  const out = Object.entries(sd).map(([key, t]) => ({ key, shape: t.shape, dtype: t.dtype as string }));
  for (const t of Object.values(sd)) t.dispose();
  return out;
}

export interface Fixture {
  id: string;
  size: number;
  batch: number;
  numParams: number;
  stateDict: { key: string; shape: number[]; dtype: string }[];
}

/** The tensors of a torch.save file, freed after fn. */
export async function withFile<T>(path: string, fn: (t: Record<string, Tensor>) => T | Promise<T>): Promise<T> {
  const tensors = await cz.load(path);
  try {
    return await fn(tensors);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/** Runs tools/tv_reference.py --serve and hands out fixtures in request order. */
export class Reference {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private waiting: ((line: string) => void)[] = [];
  private requested = new Map<string, Promise<Fixture>>();
  private stderr = '';
  constructor(readonly root: string) {}

  private start(): ChildProcessWithoutNullStreams {
    if (this.proc) return this.proc;
    const p = spawn(PY, [SCRIPT, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    p.stderr.on('data', (d) => {
      this.stderr += String(d);
    });
    createInterface({ input: p.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    p.on('exit', (code) => {
      for (const w of this.waiting.splice(0)) w(JSON.stringify({ ok: false, error: `tv_reference.py exited (${code}): ${this.stderr.slice(-2000)}` }));
    });
    return (this.proc = p);
  }

  /** Asks for a fixture (once per name); the answer comes when Python has written it. */
  request(name: string, req: { id: string; size: number; batch: number; options?: Record<string, unknown>; metaOnly?: boolean }): Promise<Fixture> {
    let pending = this.requested.get(name);
    if (!pending) {
      const out = join(this.root, name);
      pending = new Promise<Fixture>((resolve, reject) => {
        this.waiting.push((line) => {
          const reply = JSON.parse(line) as { ok: boolean; error?: string };
          if (!reply.ok) return reject(new Error(`tv_reference.py ${name}: ${reply.error}`));
          try {
            resolve(JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as Fixture);
          } catch (e) {
            reject(e);
          }
        });
      });
      this.start().stdin.write(JSON.stringify({ ...req, out }) + '\n');
      this.requested.set(name, pending);
    }
    return pending;
  }

  dir(name: string): string {
    return join(this.root, name);
  }
  drop(name: string): void {
    rmSync(this.dir(name), { recursive: true, force: true });
  }
  close(): void {
    this.proc?.kill();
    this.proc = null;
  }
}

// ---- torchvision parity

export interface TvCase<M extends cz.ClassifierModel = cz.ClassifierModel> {
  id: string;
  size: number;
  batch: number;
  /** Options for our builder; dropout is off so that train-mode outputs are deterministic. */
  opts?: Record<string, unknown>;
  /** The train-mode outputs against the fixture's (default: forward against trainLogits). Runs inside tidy and noGrad-free. */
  trainOutputs?: (model: M, x: Tensor, io: Record<string, Tensor>) => void;
  /** Further checks with the same fixture. */
  extra?: (fx: Fixture, dir: string, io: Record<string, Tensor>, ref: Reference) => Promise<void>;
}

/**
 * One test per case: torchvision's state-dict keys, shapes and dtypes in order, parameter count, eval
 * logits, train-mode logits and BN running statistics (in float64). `title` names the describe block.
 */
export function parityTests(title: string, cases: TvCase[]): void {
  describe(title, () => {
    let ref: Reference;
    beforeAll(() => {
      requireTorchvision();
      ref = new Reference(mkdtempSync(join(tmpdir(), 'convzoo-models-')));
    });
    afterAll(() => {
      if (ref) {
        ref.close();
        rmSync(ref.root, { recursive: true, force: true });
      }
    });

    const ask = (c: TvCase) => ref.request(c.id, { id: c.id, size: c.size, batch: c.batch });

    cases.forEach((c, i) => {
      test(`${c.id}: keys, parameter count, eval logits and train-mode BN statistics`, async () => {
        const pending = ask(c);
        if (cases[i + 1]) void ask(cases[i + 1]).catch(() => {}); // Python prepares the next one meanwhile
        const fx = await pending;
        const dir = ref.dir(c.id);
        const model = build(c.id, { dropRate: 0, ...c.opts });
        try {
          // Same keys in the same order, shapes and dtypes: torchvision's state dict exactly.
          expect(stateSpec(model)).toEqual(fx.stateDict.map((e) => ({ key: e.key, shape: e.shape, dtype: e.dtype })));
          expect(model.numParameters()).toBe(fx.numParams);
          const meta = cz.modelMeta(c.id);
          if (c.id !== 'googlenet') expect(meta.params).toBe(fx.numParams); // googlenet's published count omits the aux heads
          expect(meta.torchvision).toBe(c.id);

          // torchvision's weights, saved by torch.save and read by cz.load.
          await withFile(join(dir, 'state.pt'), (sd) => {
            model.loadStateDict(sd);
          });
          await withFile(join(dir, 'io.pt'), async (io) => {
            cz.tidy(() => {
              let x = io.input;
              model.eval();
              expect(
                relMaxDiff(
                  cz.noGrad(() => model.forward(x)),
                  io.logits,
                ),
              ).toBeLessThan(1e-4);
              // forwardFeatures + forwardHead is forward.
              expect(
                relMaxDiff(
                  cz.noGrad(() => model.forwardHead(model.forwardFeatures(x))),
                  io.logits,
                ),
              ).toBeLessThan(1e-6);

              // One train-mode forward: batch statistics in the outputs, running statistics updated. In
              // float64 on both sides (batch statistics of deep random networks are ill-conditioned in float32).
              model.to('float64').train();
              x = x.to('float64');
              if (c.trainOutputs) c.trainOutputs(model, x, io);
              else
                expect(
                  relMaxDiff(
                    cz.noGrad(() => model.forward(x)),
                    io.trainLogits,
                  ),
                ).toBeLessThan(1e-4);
              const ours = model.stateDict();
              const stats = Object.keys(io).filter((k) => k.startsWith('trainStats.'));
              expect(stats.length).toBe(Object.keys(ours).filter((k) => /running_mean|running_var|num_batches_tracked/.test(k)).length);
              for (const k of stats) {
                const key = k.slice('trainStats.'.length);
                if (io[k].dtype === 'int64') expect(ours[key].toArray(), key).toEqual(io[k].toArray());
                else expect(relMaxDiff(ours[key], io[k]), key).toBeLessThan(1e-4);
              }
            });
            await c.extra?.(fx, dir, io, ref);
          });
        } finally {
          disposeModel(model);
          ref.drop(c.id);
        }
      });
    });
  });
}
