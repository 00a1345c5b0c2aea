#!/usr/bin/env node
// Model forward speed: every ImageNet model of the zoo, convzoo beside PyTorch and onnxruntime-node, in one run.
//
//   npx tsc -p tsconfig.json && node bench/models.mjs [--models resnet50,vgg16] [--batch 1,16] [--threads 2] [--quick]
//
// Three long-lived worker processes run the same model with random initialisation in eval mode on the
// same input size:
// - convzoo: buildModel(id).eval(), forward under cz.inferenceMode + cz.tidy;
// - PyTorch: Debian's /usr/bin/python3 (torch 1.13, the same libtorch) with torchvision's own builder,
//   forward under torch.inference_mode(), glibc's mmap and trim thresholds raised (its best setting
//   here, as convzoo's caching allocator is for convzoo; see bench/engine.mjs);
// - czort: convzoo's own ONNX export of the same model (cz.exportOnnx, opset 17, dynamic batch, batch norms
//   folded) in onnxruntime-node, made into bench/.cache/onnx-convzoo/ (again whenever dist/onnx changes);
// - onnxruntime-node (ort): torchvision's ONNX export of the same model (torch.onnx.export, opset 17, dynamic
//   batch), made once into bench/.cache/onnx/ by bench/torch_models.py, CPU provider, all graph optimisations.
//   czort/ort compares the two exports in the same runtime (the target: >= 1.0).
// - the inference fast path (--sides convzoo,czfast,czbf16,ptcl,ptbf16,ort): czfast is model.optimizeForInference()
//   (batch norms folded, channels-last, float32), czbf16 the same in bfloat16; ptcl is PyTorch tuned for float32
//   inference (channels-last, torch.jit.trace + freeze + optimize_for_inference), ptbf16 PyTorch's bf16 autocast on
//   channels-last. The ratios czfast/ort, czbf16/ort, czfast/ptcl and czbf16/ptbf16 are printed.
// The networks torchvision lacks (the paper variants alexnet_original, vgg_a_lrn, vgg_c, googlenet_original,
// MobileNet v1, and timm's/the authors' SENet, DPN and IGC V1) are written layer for layer in
// bench/torch_models.py for the PyTorch and ONNX columns (marked *; same parameter and MAC counts).
// All sides use the same number of threads (intra-op; ORT inter-op 1), and convzoo and PyTorch the same
// libgomp wait policy (convzoo's PASSIVE; --torch-spin leaves PyTorch spinning, libgomp's default, which
// on a shared machine stalls an op for a scheduler tick whenever a neighbour holds the other core).
// The driver asks the workers for
// one forward at a time, in rotating order, with a short pause between them: consecutive forwards of
// the three sides see the same machine, and each round's ratios cancel most of a shared machine's
// load swings. Throughput is batch / the fastest forward's time (the one least disturbed by other
// processes; the median is printed too); each ratio is given both as the ratio of the fastest forwards
// and as the median of the per-round ratios. When those two disagree by over 10% or the per-round
// ratios scatter, the case is measured a second time (its rounds added) and flagged if still noisy.
import { spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { lineWorker, median } from './worker_client.mjs';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';
const TORCH_SCRIPT = path.join(here, 'torch_models.py');
const ONNX_DIR = path.join(here, '.cache', 'onnx');
const CZ_ONNX_DIR = path.join(here, '.cache', 'onnx-convzoo');

// Every ImageNet model of the zoo except vgg_a/_b/_d/_e (vgg11/13/16/19 under the paper's names) and the
// CIFAR ResNets (32x32 inputs); --models takes those too.
const DEFAULT_MODELS = [
  'alexnet',
  'alexnet_original',
  'vgg11',
  'vgg11_bn',
  'vgg13',
  'vgg13_bn',
  'vgg16',
  'vgg16_bn',
  'vgg19',
  'vgg19_bn',
  'vgg_a_lrn',
  'vgg_c',
  'googlenet',
  'googlenet_original',
  'resnet18',
  'resnet34',
  'resnet50',
  'resnet101',
  'resnet152',
  'wide_resnet50_2',
  'wide_resnet101_2',
  'resnext50_32x4d',
  'resnext101_32x8d',
  'resnext101_64x4d',
  // Zoo part 2: torchvision's ids; MobileNet v1, SENet, DPN and IGC V1 are written in torch_models.py.
  'mobilenetv1_100',
  'mobilenetv1_125',
  'mobilenet_v1_1_0',
  'mobilenet_v1_0_75',
  'mobilenet_v1_0_5',
  'mobilenet_v1_0_25',
  'densenet121',
  'densenet161',
  'densenet169',
  'densenet201',
  'mobilenet_v2',
  'mobilenet_v3_large',
  'mobilenet_v3_small',
  'legacy_seresnet18',
  'legacy_seresnet34',
  'legacy_seresnet50',
  'legacy_seresnet101',
  'legacy_seresnet152',
  'legacy_seresnext26_32x4d',
  'legacy_seresnext50_32x4d',
  'legacy_seresnext101_32x4d',
  'legacy_senet154',
  'seresnet50',
  'seresnext50_32x4d',
  'dpn68',
  'dpn68b',
  'dpn92',
  'dpn98',
  'dpn107',
  'dpn131',
  'igc_l4m32',
  'igc_l16m16',
  'igc_l100m2',
  // Zoo part 3 (torch_models.py writes the ids torchvision lacks). Left to --models: those over 20 GMACs
  // (dm_nfnet_f1 ... f6, efficientnet_b7, tf_efficientnet_b7), whose batch-16 forwards take minutes here.
  'shufflenet_v1_g1',
  'shufflenet_v1_g2',
  'shufflenet_v1_g3',
  'shufflenet_v1_g4',
  'shufflenet_v1_g8',
  'shufflenet_v1_g3_0_5x',
  'shufflenet_v1_g3_1_5x',
  'shufflenet_v1_g3_2_0x',
  'shufflenet_v2_x0_5',
  'shufflenet_v2_x1_0',
  'shufflenet_v2_x1_5',
  'shufflenet_v2_x2_0',
  'resattnet56',
  'resattnet92',
  'mnasnet0_5',
  'mnasnet0_75',
  'mnasnet1_0',
  'mnasnet1_3',
  'semnasnet_050',
  'semnasnet_075',
  'semnasnet_100',
  'semnasnet_140',
  'mnasnet_100',
  'efficientnet_b0',
  'efficientnet_b1',
  'efficientnet_b2',
  'efficientnet_b3',
  'efficientnet_b4',
  'efficientnet_b5',
  'efficientnet_b6',
  'tf_efficientnet_b0',
  'tf_efficientnet_b1',
  'tf_efficientnet_b2',
  'tf_efficientnet_b3',
  'tf_efficientnet_b4',
  'tf_efficientnet_b5',
  'tf_efficientnet_b6',
  'dm_nfnet_f0',
  'nfnet_l0',
  'eca_nfnet_l0',
];
const SIDES = ['convzoo', 'czfast', 'czbf16', 'czort', 'pytorch', 'ptcl', 'ptbf16', 'ort'];
/** The sides a plain run measures; --sides picks others (the fast path: convzoo,czfast,czbf16,ptcl,ptbf16,ort). */
const DEFAULT_SIDES = ['convzoo', 'czort', 'pytorch', 'ort'];
/** Comparisons printed beside convzoo's (each when both sides run): [numerator, denominator]. */
const PAIRS = [
  ['czort', 'ort'],
  ['czfast', 'ort'],
  ['czbf16', 'ort'],
  ['czfast', 'ptcl'],
  ['czbf16', 'ptbf16'],
];
/** What each convzoo / PyTorch side runs (the worker's variant). */
const VARIANT = { convzoo: 'eager', czfast: 'fast', czbf16: 'bf16', pytorch: 'eager', ptcl: 'cl', ptbf16: 'bf16' };
/** libgomp's wait policy that convzoo's addon runs with (src/native.ts sets PASSIVE unless the user set one). */
const ompWaitPolicy = () => process.env.OMP_WAIT_POLICY ?? 'PASSIVE';

function parseArgs(argv) {
  const o = {
    models: DEFAULT_MODELS,
    batch: [1, 16],
    threads: 2,
    quick: false,
    seconds: 3,
    minIters: 3,
    maxIters: 15,
    pauseMs: 30,
    worker: null,
    variant: 'eager',
    sides: DEFAULT_SIDES,
    torchSpin: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase()); // --min-iters -> minIters
    if (k === 'quick' || k === 'torchSpin') o[k] = true;
    else if (k === 'worker' || k === 'variant') o[k] = argv[++i];
    else if (k === 'models' || k === 'sides') o[k] = argv[++i].split(',').filter(Boolean);
    else if (k === 'batch') o.batch = argv[++i].split(',').map(Number);
    else if (k in o && typeof o[k] === 'number') o[k] = Number(argv[++i]);
    else
      throw new Error(
        `unknown option ${argv[i]} (options: --models a,b --batch 1,16 --threads 2 --quick --seconds 3 --min-iters 3 --max-iters 15 --sides convzoo,czort,pytorch,ort --torch-spin)`,
      );
  }
  if (o.quick) Object.assign(o, { seconds: 1, minIters: 2, maxIters: 5 });
  for (const s of o.sides) if (!SIDES.includes(s)) throw new Error(`unknown side ${s}`);
  return o;
}

// ---------------------------------------------------------------------------------------------------
// Workers: one JSON line in ({cmd: 'load', model, size} | {cmd: 'run', batch} | {cmd: 'quit'}), one out.

async function serve(handle) {
  for await (const line of createInterface({ input: process.stdin })) {
    const msg = JSON.parse(line);
    if (msg.cmd === 'quit') break;
    process.stdout.write(JSON.stringify(await handle(msg)) + '\n');
  }
}

/** Wall and CPU (all threads of the process) time of one call. */
async function timed(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const t = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { t, cpu: (c.user + c.system) / 1e6 };
}

async function convzooWorker(o) {
  const cz = await import(path.join(here, '../dist/index.js'));
  cz.setNumThreads(o.threads);
  let model = null,
    size = 0,
    inputs = new Map();
  const unload = () => {
    if (model) for (const t of [...model.parameters(), ...model.buffers()]) t.dispose();
    for (const x of inputs.values()) x.dispose();
    model = null;
    inputs = new Map();
    cz.emptyCache();
  };
  process.stdout.write(
    JSON.stringify({ version: cz.torchVersion, threads: cz.getNumThreads(), allocator: cz.memory().cachingAllocator ? 'caching' : 'system' }) + '\n',
  );
  await serve(async (msg) => {
    if (msg.cmd === 'load') {
      unload();
      cz.manualSeed(0);
      model = cz.buildModel(msg.model).eval();
      size = msg.size;
      const params = model.numParameters();
      // The inference fast path: batch norms folded, channels-last, and bf16 for that variant.
      if (o.variant !== 'eager') model.optimizeForInference({ dtype: o.variant === 'bf16' ? 'bfloat16' : 'float32' });
      return { params };
    }
    if (!inputs.has(msg.batch)) inputs.set(msg.batch, cz.randn([msg.batch, 3, size, size]));
    const x = inputs.get(msg.batch);
    return timed(() =>
      cz.inferenceMode(() =>
        cz.tidy(() => {
          model.forward(x);
        }),
      ),
    );
  });
  unload();
}

async function ortWorker(o) {
  const ort = await import('onnxruntime-node');
  let session = null,
    size = 0,
    feeds = new Map();
  process.stdout.write(JSON.stringify({ version: ort.env.versions.node ?? ort.env.versions.common }) + '\n');
  await serve(async (msg) => {
    if (msg.cmd === 'load') {
      if (session) await session.release();
      feeds = new Map();
      size = msg.size;
      session = await ort.InferenceSession.create(msg.file, {
        executionProviders: ['cpu'],
        intraOpNumThreads: o.threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
      return {};
    }
    if (!feeds.has(msg.batch)) {
      const data = new Float32Array(msg.batch * 3 * size * size);
      for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1;
      feeds.set(msg.batch, { [session.inputNames[0]]: new ort.Tensor('float32', data, [msg.batch, 3, size, size]) });
    }
    return timed(() => session.run(feeds.get(msg.batch)));
  });
  if (session) await session.release();
}

/** A worker process and a function that sends one message and resolves with its JSON answer. */
function startWorker(side, o) {
  const env = { ...process.env };
  let cmd, args;
  if (side === 'pytorch' || side === 'ptcl' || side === 'ptbf16') {
    cmd = PY;
    args = [TORCH_SCRIPT, 'worker', JSON.stringify({ threads: o.threads, variant: VARIANT[side] })];
    env.MALLOC_MMAP_THRESHOLD_ = String(32 << 20); // glibc's maximum
    env.MALLOC_TRIM_THRESHOLD_ = String(1 << 30);
    // convzoo's addon makes libgomp's threads wait passively (src/native.ts); PyTorch gets the same
    // unless --torch-spin: on a shared machine spinning waits cost it up to a scheduler tick (~8 ms) per op.
    if (o.torchSpin) delete env.OMP_WAIT_POLICY;
    else env.OMP_WAIT_POLICY = ompWaitPolicy();
  } else {
    cmd = process.execPath;
    const kind = side === 'czort' || side === 'ort' ? 'ort' : 'convzoo';
    args = [fileURLToPath(import.meta.url), '--worker', kind, '--variant', VARIANT[side] ?? 'eager', '--threads', String(o.threads)];
  }
  const w = lineWorker(side, cmd, args, env);
  return {
    hello: w.hello,
    exited: w.exited,
    ask: (msg) => w.ask(JSON.stringify(msg)),
    stop: () => w.stop(JSON.stringify({ cmd: 'quit' })),
  };
}

// ---------------------------------------------------------------------------------------------------

const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '-');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The ONNX file of a model: torchvision's name for it (vgg_a is vgg11), else its own id. */
const onnxName = (meta) => meta.torchvision ?? meta.id;

/**
 * Exports the models that have no ONNX file yet (torch.onnx.export, outside any timing), each traced at
 * its own input size (`name@size`): TF "same" padding is traced as constants of that size.
 */
function exportOnnx(models) {
  const missing = [...new Map(models.map((m) => [m.name, m])).values()].filter((m) => !existsSync(path.join(ONNX_DIR, `${m.name}.onnx`)));
  if (missing.length === 0) return;
  console.error(`exporting ${missing.length} model(s) to ONNX into ${path.relative(process.cwd(), ONNX_DIR)}/ (once) ...`);
  const args = missing.map((m) => `${m.name}@${m.size}`);
  const r = spawnSync(PY, [TORCH_SCRIPT, 'export', ONNX_DIR, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`ONNX export failed (exit ${r.status})`);
}

/**
 * convzoo's own export of each model (random weights, as every side has), made again when the exporter in
 * dist/onnx is newer than the file.
 */
async function exportConvzooOnnx(cz, ids) {
  const exporter = Math.max(...['export.js', 'trace.js', 'op_map.js', 'serialize.js'].map((f) => statSync(path.join(here, '../dist/onnx', f)).mtimeMs));
  const stale = ids.filter((id) => {
    const f = path.join(CZ_ONNX_DIR, `${id}.onnx`);
    return !existsSync(f) || statSync(f).mtimeMs < exporter;
  });
  if (stale.length === 0) return;
  mkdirSync(CZ_ONNX_DIR, { recursive: true });
  console.error(`exporting ${stale.length} model(s) with cz.exportOnnx into ${path.relative(process.cwd(), CZ_ONNX_DIR)}/ ...`);
  for (const id of stale) {
    const model = cz.buildModel(id);
    await cz.exportOnnx(model, path.join(CZ_ONNX_DIR, `${id}.onnx`), { batch: 'dynamic' });
    model.dispose();
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.worker === 'convzoo') {
    await convzooWorker(o);
    return;
  }
  if (o.worker === 'ort') {
    await ortWorker(o);
    return;
  }

  const cz = await import(path.join(here, '../dist/index.js'));
  for (const id of o.models) cz.modelMeta(id); // unknown ids fail here, before any work
  if (o.sides.includes('ort'))
    exportOnnx(
      o.models.map((id) => {
        const meta = cz.modelMeta(id);
        return { name: onnxName(meta), size: meta.inputSize[1] };
      }),
    );

  if (o.sides.includes('czort')) await exportConvzooOnnx(cz, o.models);

  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown cpu';
  const load0 = os.loadavg();
  const workers = Object.fromEntries(o.sides.map((s) => [s, startWorker(s, o)]));
  const hello = {};
  for (const s of o.sides) hello[s] = await workers[s].hello;
  const libtorch = hello.convzoo?.version ?? cz.torchVersion;
  const machine = `${cpu}, ${os.cpus().length} cpus, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB`;
  const versions = [
    `libtorch ${libtorch}`,
    hello.pytorch && `torch ${hello.pytorch.version}/torchvision ${hello.pytorch.torchvision}`,
    hello.ort && `onnxruntime-node ${hello.ort.version}`,
  ]
    .filter(Boolean)
    .join(', ');
  const threads = o.sides.map((s) => hello[s].threads ?? o.threads).join('/');
  console.log(
    `# ${machine} | ${versions} | float32 | threads ${threads} (${o.sides.join('/')}) | OMP_WAIT_POLICY ${ompWaitPolicy()}${o.torchSpin ? ' (PyTorch: libgomp default, spinning)' : ''} | load average ${load0.map((x) => x.toFixed(2)).join(' ')}`,
  );
  const t00 = performance.now();
  const rows = [];
  const measureModel = async (id) => {
    const meta = cz.modelMeta(id);
    const size = meta.inputSize[1];
    const paper = !meta.torchvision;
    const loaded = {};
    const files = { ort: path.join(ONNX_DIR, `${onnxName(meta)}.onnx`), czort: path.join(CZ_ONNX_DIR, `${id}.onnx`) };
    for (const s of o.sides) files[s] ??= undefined;
    for (const s of o.sides) loaded[s] = await workers[s].ask({ cmd: 'load', model: id, file: files[s], size });
    if (loaded.convzoo && loaded.pytorch && loaded.convzoo.params !== loaded.pytorch.params) {
      console.log(`! ${id}: parameter counts differ: convzoo ${loaded.convzoo.params}, pytorch ${loaded.pytorch.params}`);
    }
    for (const batch of o.batch) {
      const run = async (order) => {
        const r = {};
        for (const s of order) {
          r[s] = await workers[s].ask({ cmd: 'run', batch });
          await sleep(o.pauseMs);
        }
        return r;
      };
      // Warm-up: one round, a second one when a forward is short; the slowest side sets the round count.
      let warm = await run(o.sides);
      if (Math.max(...Object.values(warm).map((r) => r.t)) < 2) warm = await run([...o.sides].reverse());
      const slowest = Math.max(...Object.values(warm).map((r) => r.t));
      const iters = Math.max(o.minIters, Math.min(o.maxIters, Math.ceil(o.seconds / slowest)));
      const loadStart = os.loadavg()[0];
      const rounds = [];
      const measure = async (n) => {
        for (let i = 0; i < n; i++) {
          const k = rounds.length;
          rounds.push(await run(o.sides.map((_, j) => o.sides[(k + j) % o.sides.length])));
        }
      };
      await measure(iters);
      let row = summarise(o, rounds, { id, paper, size, batch, gmacs: meta.gmacs });
      // A shared machine: when a competing process hit some forwards, the fastest-forward ratio and the
      // median of the per-round ratios disagree, or the per-round ratios scatter. Measure that case again.
      if (row.noisy) {
        await measure(iters);
        row = summarise(o, rounds, { id, paper, size, batch, gmacs: meta.gmacs, remeasured: true });
      }
      row.load = (loadStart + os.loadavg()[0]) / 2;
      rows.push(row);
      const tag = `[${cpu}, ${os.cpus().length} cpus | libtorch ${libtorch} | float32 | batch ${batch} | ${size}x${size} | threads ${o.threads}]`;
      const side = (s) => (row[s] ? `${s} ${fmt(row[s].ips, 2)} img/s (median ${fmt(row[s].ipsMedian, 2)}, cpu/wall ${fmt(row[s].util, 2)})` : null);
      const ratios = OTHERS.filter((s) => row[`cz/${s}`]).map(
        (s) =>
          `convzoo/${s} ${fmt(row[`cz/${s}`].best, 3)} (paired median ${fmt(row[`cz/${s}`].paired, 3)})` +
          `${s === 'pytorch' && row[`cz/${s}`].best < 0.95 ? ' BELOW PyTorch' : ''}`,
      );
      for (const [a, b] of PAIRS)
        if (row[`${a}/${b}`]) ratios.push(`${a}/${b} ${fmt(row[`${a}/${b}`].best, 3)} (paired median ${fmt(row[`${a}/${b}`].paired, 3)})`);
      console.log(
        `${tag} ${id}${paper ? '*' : ''}: ${o.sides.map(side).join(', ')} | ${ratios.join(', ')} | ` +
          `${rounds.length} rounds${row.remeasured ? ` (noisy: measured twice${row.noisy ? ', still noisy' : ''})` : ''}, load ${fmt(row.load, 2)}`,
      );
    }
  };
  const lost = [];
  for (const id of o.models) {
    try {
      await measureModel(id);
    } catch (err) {
      // A worker died (on a small machine, the kernel's out-of-memory killer at the largest models' batch 16):
      // the model is left out and named at the end; the dead workers start again and the run goes on.
      const dead = o.sides.filter((s) => workers[s].exited());
      if (dead.length === 0) throw err;
      console.log(`! ${id}: ${err.message}; left out, the run goes on`);
      lost.push(`${id}: ${err.message}`);
      for (const s of dead) {
        workers[s] = startWorker(s, o);
        await workers[s].hello;
      }
    }
  }
  for (const s of o.sides) workers[s].stop();
  const load1 = os.loadavg();

  // A Markdown table for BENCHMARKS.md.
  console.log(
    `\n${machine}; ${versions}; float32; ${o.threads} threads on every side; load average ${load0.map((x) => x.toFixed(2)).join(' ')} before, ` +
      `${load1.map((x) => x.toFixed(2)).join(' ')} after; ${fmt((performance.now() - t00) / 60000, 1)} min.\n`,
  );
  const others = OTHERS.filter((s) => o.sides.includes(s) && o.sides.includes('convzoo'));
  const cols = [
    'model',
    'input',
    'batch',
    'GMACs/img',
    ...o.sides.map((s) => `${s} img/s`),
    ...others.map((s) => `convzoo/${s}`),
    ...(others.includes('pytorch') ? ['convzoo/pytorch, paired median'] : []),
    ...pairsIn(o).map(([a, b]) => `${a}/${b}`),
    'rounds',
    'load',
  ];
  console.log(`| ${cols.join(' | ')} |`);
  console.log(`|${cols.map((_, i) => (i < 1 ? '---' : '---:')).join('|')}|`);
  for (const r of rows) {
    const cells = [
      `${r.id}${r.paper ? '*' : ''}`,
      `${r.size}`,
      `${r.batch}`,
      fmt(r.gmacs ?? NaN, 2),
      ...o.sides.map((s) => fmt(r[s].ips, 2)),
      ...others.map((s) => `**${fmt(r[`cz/${s}`].best, 2)}**`),
      ...(others.includes('pytorch') ? [fmt(r['cz/pytorch'].paired, 2)] : []),
      ...pairsIn(o).map(([a, b]) => `**${fmt(r[`${a}/${b}`].best, 2)}**`),
      `${r.rounds}${r.noisy ? ' (noisy)' : ''}`,
      fmt(r.load, 1),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
  if (lost.length) {
    console.log(`\nLeft out (a worker died; the batches measured before it are above):\n${lost.map((l) => `- ${l}`).join('\n')}`);
    process.exitCode = 1;
  }
}

const OTHERS = ['czort', 'pytorch', 'ort'];
const pairsIn = (o) => PAIRS.filter(([a, b]) => o.sides.includes(a) && o.sides.includes(b));

/**
 * Per side: throughput of the fastest forward (the one least disturbed by other processes) and of the
 * median one. Per comparison: the ratio of the fastest forwards and the median of the per-round ratios.
 */
function summarise(o, rounds, row) {
  row.rounds = rounds.length;
  const batch = row.batch;
  for (const s of o.sides) {
    const ts = rounds.map((r) => r[s].t);
    row[s] = { ips: batch / Math.min(...ts), ipsMedian: batch / median(ts), util: median(rounds.map((r) => r[s].cpu / r[s].t)) };
  }
  row.noisy = false;
  // The two exports in the same runtime; the fast path against onnxruntime and tuned PyTorch.
  for (const [a, b] of pairsIn(o)) {
    const per = rounds.map((r) => r[b].t / r[a].t);
    row[`${a}/${b}`] = { best: row[a].ips / row[b].ips, paired: median(per) };
  }
  if (!row.convzoo) return row;
  for (const s of OTHERS) {
    if (!row[s]) continue;
    const per = rounds.map((r) => r[s].t / r.convzoo.t).sort((a, b) => a - b);
    const q = (f) => per[Math.min(per.length - 1, Math.round(f * (per.length - 1)))];
    const c = { best: row.convzoo.ips / row[s].ips, paired: median(per) };
    row[`cz/${s}`] = c;
    if (Math.abs(Math.log(c.best / c.paired)) > Math.log(1.1) || (q(0.75) - q(0.25)) / c.paired > 0.25) row.noisy = true;
  }
  return row;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
