// Model families against torchvision, and the paper variants against their papers.
// For every model id that torchvision has, tools/tv_reference.py (run once as a server, one model at a
// time, one model ahead of the test) builds torchvision's model with a fixed seed and torch.saves its
// state dict, an input, eval-mode logits, train-mode logits and the BN running statistics after one
// train-mode forward. The tests check convzoo's state-dict keys, shapes and dtypes (in order) and
// parameter counts, then load the same file with cz.load and compare the outputs and statistics.
import { describe, test, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { GoogLeNet } from '../src/models/googlenet.js';
import { AlexNet } from '../src/models/alexnet.js';
import { VGG, VGG_CONFIGS } from '../src/models/vgg.js';

const PY = '/usr/bin/python3';
const SCRIPT = new URL('../tools/tv_reference.py', import.meta.url).pathname;

let live = 0;
beforeEach(() => { live = cz.memory().tensors; });
afterEach(() => { expect(cz.memory().tensors, 'tensors leaked by this test').toBe(live); });

// ---- helpers

/** Frees a model's parameters and buffers (modules have no other tensors). */
function disposeModel(m: cz.nn.Module): void {
  for (const t of [...m.parameters(), ...m.buffers()]) t.dispose();
}

function build<T extends cz.ClassifierModel = cz.ClassifierModel>(id: string, opts: Record<string, unknown> = {}): T {
  return cz.buildModel(id, opts) as T;
}

/** max |a - b| / max |b| */
function relMaxDiff(a: Tensor, b: Tensor): number {
  return cz.tidy(() => {
    expect(a.shape).toEqual(b.shape);
    return a.sub(b).abs().max().item() / Math.max(b.abs().max().item(), 1e-12);
  });
}

function stateSpec(m: cz.nn.Module): { key: string; shape: number[]; dtype: string }[] {
  const sd = m.stateDict();
  const out = Object.entries(sd).map(([key, t]) => ({ key, shape: t.shape, dtype: t.dtype as string }));
  for (const t of Object.values(sd)) t.dispose();
  return out;
}

interface Fixture {
  id: string; size: number; batch: number; numParams: number;
  stateDict: { key: string; shape: number[]; dtype: string }[];
}

/** The tensors of a torch.save file, freed after fn. */
async function withFile<T>(path: string, fn: (t: Record<string, Tensor>) => T | Promise<T>): Promise<T> {
  const tensors = await cz.load(path);
  try { return await fn(tensors); } finally { for (const t of Object.values(tensors)) t.dispose(); }
}

/** Runs tools/tv_reference.py --serve and hands out fixtures in request order. */
class Reference {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private waiting: ((line: string) => void)[] = [];
  private requested = new Map<string, Promise<Fixture>>();
  private stderr = '';
  constructor(readonly root: string) {}

  private start(): ChildProcessWithoutNullStreams {
    if (this.proc) return this.proc;
    const p = spawn(PY, [SCRIPT, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    p.stderr.on('data', (d) => { this.stderr += String(d); });
    createInterface({ input: p.stdout }).on('line', (line) => this.waiting.shift()?.(line));
    p.on('exit', (code) => { for (const w of this.waiting.splice(0)) w(JSON.stringify({ ok: false, error: `tv_reference.py exited (${code}): ${this.stderr.slice(-2000)}` })); });
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
          try { resolve(JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as Fixture); } catch (e) { reject(e); }
        });
      });
      this.start().stdin.write(JSON.stringify({ ...req, out }) + '\n');
      this.requested.set(name, pending);
    }
    return pending;
  }

  dir(name: string): string { return join(this.root, name); }
  drop(name: string): void { rmSync(this.dir(name), { recursive: true, force: true }); }
  close(): void { this.proc?.kill(); this.proc = null; }
}

// ---- torchvision parity

interface TvCase {
  id: string; size: number; batch: number;
  /** Options for our builder; dropout is off so that train-mode outputs are deterministic. */
  opts?: Record<string, unknown>;
  /** Further checks with the same fixture. */
  extra?: (fx: Fixture, dir: string, io: Record<string, Tensor>, ref: Reference) => Promise<void>;
}

// Small inputs where adaptive pooling allows (VGG's minimum is 32, AlexNet's 63); batch 2 for BN statistics.
const TV_CASES: TvCase[] = [
  { id: 'alexnet', size: 64, batch: 2 },
  { id: 'googlenet', size: 64, batch: 2, opts: { auxDropRate: 0 }, extra: googlenetExtra },
  ...['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnext50_32x4d', 'resnext101_32x8d', 'resnext101_64x4d',
    'wide_resnet50_2', 'wide_resnet101_2'].map((id) => ({ id, size: 64, batch: 2 })),
  ...['vgg11', 'vgg11_bn', 'vgg13', 'vgg13_bn', 'vgg16', 'vgg16_bn', 'vgg19', 'vgg19_bn'].map((id) => ({ id, size: 32, batch: 2 })),
];

const havePython = existsSync(PY);

describe.skipIf(!havePython)('torchvision parity', () => {
  let ref: Reference;
  beforeAll(() => { ref = new Reference(mkdtempSync(join(tmpdir(), 'convzoo-models-'))); });
  afterAll(() => { ref.close(); rmSync(ref.root, { recursive: true, force: true }); });

  const ask = (c: TvCase) => ref.request(c.id, { id: c.id, size: c.size, batch: c.batch });

  TV_CASES.forEach((c, i) => {
    test(`${c.id}: keys, parameter count, eval logits and train-mode BN statistics`, async () => {
      const pending = ask(c);
      if (TV_CASES[i + 1]) void ask(TV_CASES[i + 1]).catch(() => {}); // Python prepares the next one meanwhile
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
        await withFile(join(dir, 'state.pt'), (sd) => { model.loadStateDict(sd); });
        await withFile(join(dir, 'io.pt'), async (io) => {
          cz.tidy(() => {
            let x = io.input;
            model.eval();
            expect(relMaxDiff(cz.noGrad(() => model.forward(x)), io.logits)).toBeLessThan(1e-4);
            // forwardFeatures + forwardHead is forward.
            expect(relMaxDiff(cz.noGrad(() => model.forwardHead(model.forwardFeatures(x))), io.logits)).toBeLessThan(1e-6);

            // One train-mode forward: batch statistics in the outputs, running statistics updated. In
            // float64 on both sides (batch statistics of deep random networks are ill-conditioned in float32).
            model.to('float64').train();
            x = x.to('float64');
            if (model instanceof GoogLeNet) {
              const out = cz.noGrad(() => model.forwardWithAux(x));
              expect(relMaxDiff(out.logits, io.trainLogits)).toBeLessThan(1e-4);
              expect(out.aux.length).toBe(2);
              expect(relMaxDiff(out.aux[0], io.trainAux1)).toBeLessThan(1e-4);
              expect(relMaxDiff(out.aux[1], io.trainAux2)).toBeLessThan(1e-4);
            } else {
              expect(relMaxDiff(cz.noGrad(() => model.forward(x)), io.trainLogits)).toBeLessThan(1e-4);
            }
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

/** GoogLeNet's options: transformInput, and the model without auxiliary heads. */
async function googlenetExtra(fx: Fixture, dir: string, io: Record<string, Tensor>, ref: Reference): Promise<void> {
  // transform_input: torchvision's re-normalisation; on by default once createModel has loaded weights.
  const ti = build<GoogLeNet>('googlenet', { transformInput: true, auxLogits: false });
  const plain = build<GoogLeNet>('googlenet', { auxLogits: false });
  const off = build<GoogLeNet>('googlenet', { auxLogits: false, transformInput: false });
  try {
    expect([ti.transformInput, plain.transformInput, off.transformInput]).toEqual([true, false, false]);
    plain._weightsTag = off._weightsTag = 'IMAGENET1K_V1'; // what createModel sets after loading weights
    expect([plain.transformInput, off.transformInput]).toEqual([true, false]);
    await withFile(join(dir, 'state.pt'), (sd) => {
      const r = ti.loadStateDict(sd); // aux1.* / aux2.* are ignored: torchvision drops the heads after loading
      expect(r.unexpectedKeys).toEqual([]);
    });
    cz.tidy(() => {
      ti.eval();
      expect(relMaxDiff(cz.noGrad(() => ti.forward(io.input)), io.logitsTransformInput)).toBeLessThan(1e-4);
    });
    // The builder's pretrained path with a local file: transformInput switches on as in torchvision.
    const path = join(dir, 'state.pt');
    // As torchvision: pretrained weights come without the auxiliary heads unless auxLogits is asked for.
    for (const opts of [{}, { numClasses: 10 }, { numClasses: 10, auxLogits: true }]) {
      const m = await cz.createModel('googlenet', { weights: path, ...opts }) as GoogLeNet;
      try {
        expect(m.transformInput).toBe(true);
        m.eval();
        cz.tidy(() => {
          const y = cz.noGrad(() => m.forward(io.input));
          if (!opts.numClasses) expect(relMaxDiff(y, io.logitsTransformInput)).toBeLessThan(1e-4);
          else expect(y.shape).toEqual([2, 10]);
          // The trunk came from the file either way.
          const f = cz.noGrad(() => m.forwardFeatures(io.input));
          const g = cz.noGrad(() => ti.forwardFeatures(io.input));
          expect(relMaxDiff(f, g)).toBeLessThan(1e-6);
        });
        expect(m.aux1 === null).toBe((opts as { auxLogits?: boolean }).auxLogits !== true);
      } finally { disposeModel(m); }
    }
    cz.tidy(() => { ti.train(); expect(cz.noGrad(() => ti.forwardWithAux(io.input)).aux).toEqual([]); });
    // torchvision's googlenet(aux_logits=False): its keys, and its published parameter count.
    const noAux = await ref.request('googlenet-noaux', { id: 'googlenet', size: 64, batch: 2, options: { aux_logits: false }, metaOnly: true });
    expect(stateSpec(plain)).toEqual(noAux.stateDict.map((e) => ({ key: e.key, shape: e.shape, dtype: e.dtype })));
    expect(plain.numParameters()).toBe(noAux.numParams);
    expect(noAux.numParams).toBe(cz.modelMeta('googlenet').params);
    expect(fx.numParams - noAux.numParams).toBe(6379984);
    ref.drop('googlenet-noaux');
  } finally {
    for (const m of [ti, plain, off]) disposeModel(m);
  }
}

// ---- the papers' variants and the common surface

describe('AlexNet', () => {
  test('alexnet_original: the 2012 paper\'s layers, 60,965,224 parameters ("60 million")', () => {
    const m = build<AlexNet>('alexnet_original');
    try {
      expect(m.numParameters()).toBe(60965224);
      expect(cz.modelMeta('alexnet_original').params).toBe(60965224);
      expect(cz.modelMeta('alexnet_original').inputSize).toEqual([3, 227, 227]);
      const convs = [...m.features].filter((l): l is cz.nn.Conv2d => l instanceof cz.nn.Conv2d);
      expect(convs.map((c) => c.outChannels)).toEqual([96, 256, 384, 384, 256]);
      expect(convs.map((c) => c.groups)).toEqual([1, 2, 1, 2, 2]);
      expect(convs[0].kernelSize).toEqual([11, 11]);
      expect(convs[0].stride).toEqual([4, 4]);
      // conv, relu, LRN, pool twice; then conv, relu x3 and a pool.
      expect([...m.features].map((l) => l.constructor.name)).toEqual([
        'Conv2d', 'ReLU', 'LocalResponseNorm', 'MaxPool2d', 'Conv2d', 'ReLU', 'LocalResponseNorm', 'MaxPool2d',
        'Conv2d', 'ReLU', 'Conv2d', 'ReLU', 'Conv2d', 'ReLU', 'MaxPool2d']);
      const lrn = m.features[2] as cz.nn.LocalResponseNorm;
      expect([lrn.size, lrn.opts.k, lrn.opts.alpha, lrn.opts.beta]).toEqual([5, 2, 5e-4, 0.75]);
      const pool = m.features[3] as cz.nn.MaxPool2d;
      expect([pool.kernelSize, pool.opts.stride]).toEqual([3, 2]); // overlapping pooling
      expect([...m.classifier].map((l) => l.constructor.name)).toEqual(['Linear', 'ReLU', 'Dropout', 'Linear', 'ReLU', 'Dropout', 'Linear']);
      expect((m.classifier[2] as cz.nn.Dropout).p).toBe(0.5);
      // Initialisation: N(0, 0.01) weights; biases 1 in conv2, conv4, conv5, fc6, fc7 and 0 elsewhere.
      const fcs = [...m.classifier].filter((l): l is cz.nn.Linear => l instanceof cz.nn.Linear);
      cz.tidy(() => {
        expect([...convs, ...fcs].map((l) => l.bias!.mean().item())).toEqual([0, 1, 0, 1, 1, 1, 1, 0]);
        for (const l of [convs[1], fcs[0]]) expect(l.weight.std().item()).toBeCloseTo(0.01, 3);
        // 227x227 gives 55x55 after conv1 and 6x6x256 features.
        const x = cz.randn([1, 3, 227, 227]);
        m.eval();
        expect(cz.noGrad(() => (m.features[0] as cz.nn.Conv2d).forward(x)).shape).toEqual([1, 96, 55, 55]);
        expect(cz.noGrad(() => m.forwardFeatures(x)).shape).toEqual([1, 256, 6, 6]);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 1000]);
      });
    } finally { disposeModel(m); }
  });

  test('LRN with alpha * n reproduces the paper\'s formula b = a / (k + alpha * sum a^2)^beta', () => cz.tidy(() => {
    const x = cz.randn([1, 7, 2, 2]);
    const got = cz.F.localResponseNorm(x, 5, { k: 2, alpha: 5e-4, beta: 0.75 }).mul(1).toArray();
    const a = x.toArray();
    const at = (c: number, p: number) => a[c * 4 + p];
    for (let c = 0; c < 7; c++) for (let p = 0; p < 4; p++) {
      let s = 0;
      for (let j = Math.max(0, c - 2); j <= Math.min(6, c + 2); j++) s += at(j, p) ** 2;
      expect(got[c * 4 + p]).toBeCloseTo(at(c, p) / (2 + 1e-4 * s) ** 0.75, 5);
    }
  }));

  test('alexnet: features.0 ... classifier.6, dropout before the hidden layers, 256x6x6 features', () => {
    const m = build<AlexNet>('alexnet', { numClasses: 10, inChans: 1 });
    try {
      expect([...m.classifier].map((l) => l.constructor.name)).toEqual(['Dropout', 'Linear', 'ReLU', 'Dropout', 'Linear', 'ReLU', 'Linear']);
      expect(m.numFeatures).toBe(256);
      cz.tidy(() => {
        m.eval();
        const x = cz.randn([2, 1, 64, 64]);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([2, 10]);
        expect(cz.noGrad(() => m.forwardHead(m.forwardFeatures(x), { preLogits: true })).shape).toEqual([2, 4096]);
      });
    } finally { disposeModel(m); }
  });
});

describe('VGG', () => {
  test('Table 2: 133, 133, 133, 134, 138, 144 million parameters for A, A-LRN, B, C, D, E', () => {
    const expected: [string, number, number][] = [
      ['vgg_a', 133, 132863336], ['vgg_a_lrn', 133, 132863336], ['vgg_b', 133, 133047848],
      ['vgg_c', 134, 133638952], ['vgg_d', 138, 138357544], ['vgg_e', 144, 143667240],
    ];
    for (const [id, millions, exact] of expected) {
      const m = build<VGG>(id);
      try {
        expect(Math.round(m.numParameters() / 1e6), id).toBe(millions);
        expect(m.numParameters(), id).toBe(exact);
        expect(cz.modelMeta(id).params, id).toBe(exact);
      } finally { disposeModel(m); }
    }
    // A, B, D, E are torchvision's vgg11, vgg13, vgg16, vgg19 (their published counts).
    for (const [id, tv] of [['vgg_a', 'vgg11'], ['vgg_b', 'vgg13'], ['vgg_d', 'vgg16'], ['vgg_e', 'vgg19']]) {
      expect(cz.modelMeta(id).params).toBe(cz.modelMeta(tv).weights[0].numParams);
      expect(cz.modelMeta(id).torchvision).toBe(tv);
    }
  });

  test('vgg_a has vgg11\'s keys; vgg_a_lrn adds LRN after the first conv; vgg_c has 1x1 convs in the last three stages', () => {
    const a = build<VGG>('vgg_a'), v11 = build<VGG>('vgg11'), lrn = build<VGG>('vgg_a_lrn'), c = build<VGG>('vgg_c');
    try {
      expect(stateSpec(a)).toEqual(stateSpec(v11));
      expect([...lrn.features].slice(0, 4).map((l) => l.constructor.name)).toEqual(['Conv2d', 'ReLU', 'LocalResponseNorm', 'MaxPool2d']);
      expect((lrn.features[2] as cz.nn.LocalResponseNorm).opts).toEqual({ k: 2, alpha: 5e-4, beta: 0.75 });
      const kernels = [...c.features].filter((l): l is cz.nn.Conv2d => l instanceof cz.nn.Conv2d).map((l) => l.kernelSize[0]);
      expect(kernels).toEqual([3, 3, 3, 3, 3, 3, 1, 3, 3, 1, 3, 3, 1]);
      expect(VGG_CONFIGS.C.filter((v) => typeof v === 'object').length).toBe(3);
      cz.tidy(() => {
        for (const m of [lrn, c]) {
          m.eval();
          const x = cz.randn([1, 3, 32, 32]);
          expect(cz.noGrad(() => m.forwardFeatures(x)).shape).toEqual([1, 512, 1, 1]);
          expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 1000]);
        }
      });
      // torchvision's init: He normal (fan out) convs, N(0, 0.01) linear layers, zero biases.
      cz.tidy(() => {
        const conv = a.features[0] as cz.nn.Conv2d, fc = a.classifier[0] as cz.nn.Linear;
        expect(conv.weight.std().item()).toBeCloseTo(Math.sqrt(2 / (64 * 9)), 1);
        expect(fc.weight.std().item()).toBeCloseTo(0.01, 3);
        expect(conv.bias!.abs().max().item() + fc.bias!.abs().max().item()).toBe(0);
      });
    } finally { for (const m of [a, v11, lrn, c]) disposeModel(m); }
  });
});

describe('GoogLeNet', () => {
  test('googlenet_original: no batch norm, LRN, 5x5 branches, dropout 0.4/0.7, aux heads with a 5x5/3 pool', () => {
    const m = build<GoogLeNet>('googlenet_original');
    const noAux = build<GoogLeNet>('googlenet_original', { auxLogits: false });
    try {
      expect(noAux.numParameters()).toBe(6998552);
      expect(cz.modelMeta('googlenet_original').params).toBe(6998552);
      expect(m.numParameters() - noAux.numParameters()).toBe(6379728);
      expect([...m.modules()].some((l) => l instanceof cz.nn.BatchNorm2d)).toBe(false);
      expect(m.lrn1).toBeInstanceOf(cz.nn.LocalResponseNorm);
      expect(m.lrn2).toBeInstanceOf(cz.nn.LocalResponseNorm);
      expect(((m.inception3a.branch3[1] as cz.nn.ConvBnAct).conv).kernelSize).toEqual([5, 5]);
      expect(m.dropRate).toBe(0.4);
      expect(m.auxLossWeight).toBe(0.3);
      expect(m.maxpool4.kernelSize).toBe(3);
      cz.tidy(() => {
        // Caffe's reference fillers: biases 0.2 except in the classifiers.
        expect(m.conv1.conv.bias!.mean().item()).toBeCloseTo(0.2, 6);
        expect((m.fc as cz.nn.Linear).bias!.abs().max().item()).toBe(0);
        const x = cz.randn([1, 3, 224, 224]);
        m.train();
        const out = cz.noGrad(() => m.forwardWithAux(x));
        expect(out.logits.shape).toEqual([1, 1000]);
        expect(out.aux.map((t) => t.shape)).toEqual([[1, 1000], [1, 1000]]);
        expect(cz.noGrad(() => m.forward(x)).shape).toEqual([1, 1000]); // logits in train mode too
        m.eval();
        expect(cz.noGrad(() => m.forwardFeatures(x)).shape).toEqual([1, 1024, 7, 7]);
      });
    } finally { disposeModel(m); disposeModel(noAux); }
  });

  test('googlenet: resetClassifier replaces the main and auxiliary classifiers', () => {
    const m = build<GoogLeNet>('googlenet', { inChans: 1 });
    try {
      m.resetClassifier(7);
      cz.tidy(() => {
        m.train();
        const out = cz.noGrad(() => m.forwardWithAux(cz.randn([2, 1, 64, 64])));
        expect([out.logits, ...out.aux].map((t) => t.shape)).toEqual([[2, 7], [2, 7], [2, 7]]);
      });
      m.resetClassifier(0);
      cz.tidy(() => { m.eval(); expect(cz.noGrad(() => m.forward(cz.randn([1, 1, 64, 64]))).shape).toEqual([1, 1024]); });
    } finally { disposeModel(m); }
  });
});

describe('every alexnet / vgg / googlenet id', () => {
  const ids = cz.listModels().filter((id) => ['alexnet', 'vgg', 'googlenet'].includes(cz.modelMeta(id).family));

  test('is registered with its paper, input size, normalisation, counts and state-dict prefixes', () => {
    expect(ids.sort()).toEqual(['alexnet', 'alexnet_original', 'googlenet', 'googlenet_original', 'vgg11', 'vgg11_bn', 'vgg13',
      'vgg13_bn', 'vgg16', 'vgg16_bn', 'vgg19', 'vgg19_bn', 'vgg_a', 'vgg_a_lrn', 'vgg_b', 'vgg_c', 'vgg_d', 'vgg_e']);
    const gm: Record<string, number> = { alexnet: 0.714, vgg11: 7.609, vgg13: 11.308, vgg16: 15.47, vgg19: 19.632, googlenet: 1.498 };
    for (const id of ids) {
      const meta = cz.modelMeta(id);
      expect(meta.paper.title.length, id).toBeGreaterThan(10);
      expect(meta.paper.url, id).toMatch(/^https:/);
      expect(meta.gmacs, id).toBeGreaterThan(0);
      if (gm[id.replace('_bn', '')]) expect(meta.gmacs, id).toBe(gm[id.replace('_bn', '')]);
      expect(meta.mean).toEqual(cz.IMAGENET_MEAN);
      if (meta.torchvision === id) expect(meta.weights.length, id).toBeGreaterThan(0);
    }
  });

  test('builds with numClasses, inChans and dropRate, resets its classifier, and frees intermediates', () => {
    for (const id of ['alexnet', 'alexnet_original', 'vgg11_bn', 'googlenet', 'googlenet_original']) {
      const meta = cz.modelMeta(id);
      const m = build(id, { numClasses: 5, inChans: 1, dropRate: 0.25 });
      try {
        const sd = m.stateDict();
        expect(sd[`${meta.firstConv}.weight`].shape[1], id).toBe(1);
        expect(sd[`${meta.classifier}.weight`].shape[0], id).toBe(5);
        for (const t of Object.values(sd)) t.dispose();
        expect((m as unknown as { dropRate: number }).dropRate).toBe(0.25);
        const size = id.endsWith('original') ? meta.inputSize[1] : 64;
        const x = cz.randn([1, 1, size, size]);
        m.eval();
        const before = cz.memory().tensors;
        const y = cz.noGrad(() => m.forward(x));
        expect(cz.memory().tensors, `${id}: forward leaves only its output`).toBe(before + 1);
        expect(y.shape, id).toEqual([1, 5]);
        y.dispose();
        m.resetClassifier(3);
        expect(m.numClasses).toBe(3);
        cz.tidy(() => expect(cz.noGrad(() => m.forward(x)).shape, id).toEqual([1, 3]));
        x.dispose();
      } finally { disposeModel(m); }
    }
  });
});
