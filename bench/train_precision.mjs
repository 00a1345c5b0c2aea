#!/usr/bin/env node
// Training step speed and peak memory, float32 against bf16, convzoo beside PyTorch, in one run.
//
//   npx tsc -p tsconfig.json && node bench/train_precision.mjs [--models resnet50,mobilenet_v2] [--batch 16] [--steps 6] [--threads 2]
//
// Four worker processes per model, each holding one model and one batch of random images at 224x224:
// - cz-fp32: convzoo's trainStep (forward, cross-entropy, backward, SGD with momentum), float32;
// - cz-bf16: the same with precision 'bfloat16': autocast on channels-last weights and images, float32
//   master weights, loss and batch-norm statistics (convzoo train --precision bf16);
// - pt-fp32 / pt-bf16: PyTorch 1.13 (Debian's, the same libtorch) doing the same with torch.autocast; in bf16 its
//   ReLU6 modules become two thresholds, whose backward has a bfloat16 kernel (hardtanh's has none in 1.13:
//   mobilenet_v2 stops there), as convzoo's relu6 does.
// The driver asks for one step at a time in rotating order (so the four see the same machine), after
// two warm-up steps each. Speed is the median step; peak memory is each process's VmHWM (its peak
// resident set) after the last step: the whole process, model, optimizer, activations and runtime.
import { lineWorker, median } from './worker_client.mjs';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';
const SIDES = ['cz-fp32', 'cz-bf16', 'pt-fp32', 'pt-bf16'];

function parseArgs(argv) {
  const o = { models: ['resnet50', 'mobilenet_v2'], batch: 16, size: 224, steps: 6, warmup: 2, threads: 2, worker: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'worker') o.worker = true;
    else if (k === 'models') o.models = argv[++i].split(',');
    else if (k in o && typeof o[k] === 'number') o[k] = Number(argv[++i]);
    else throw new Error(`unknown option ${argv[i]} (options: --models a,b --batch 16 --size 224 --steps 6 --warmup 2 --threads 2)`);
  }
  return o;
}

function peakRssMiB() {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function convzooWorker(o) {
  const cz = await import(path.join(here, '../dist/index.js'));
  cz.setNumThreads(o.threads);
  process.stdout.write(`${JSON.stringify({ version: cz.torchVersion, threads: cz.getNumThreads() })}\n`);
  let model, optimizer, images, labels, precision;
  for await (const line of createInterface({ input: process.stdin })) {
    const msg = JSON.parse(line);
    if (msg.cmd === 'load') {
      cz.manualSeed(0);
      model = cz.buildModel(msg.model).train();
      precision = msg.precision === 'bf16' ? 'bfloat16' : 'float32';
      if (precision === 'bfloat16') model.toMemoryFormat('channels_last'); // as convzoo train --precision bf16
      optimizer = new cz.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
      cz.manualSeed(1);
      images = cz.randn([msg.batch, 3, msg.size, msg.size]);
      labels = cz.randint(0, 1000, [msg.batch], { dtype: 'int64' });
      process.stdout.write(`${JSON.stringify({ params: model.numParameters(), rss: peakRssMiB() })}\n`);
    } else if (msg.cmd === 'step') {
      const t0 = performance.now();
      const r = cz.trainStep(model, optimizer, { images, labels }, { precision });
      const t = (performance.now() - t0) / 1000;
      process.stdout.write(`${JSON.stringify({ t, loss: r.loss, rss: peakRssMiB() })}\n`);
    } else break;
  }
}

function startWorker(side, o) {
  const env = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' };
  if (side.startsWith('pt')) {
    env.MALLOC_MMAP_THRESHOLD_ = String(32 << 20); // PyTorch's best allocator setting here (bench/engine.mjs)
    env.MALLOC_TRIM_THRESHOLD_ = String(1 << 30);
    return lineWorker(side, PY, [path.join(here, 'torch_models.py'), 'trainworker', JSON.stringify({ threads: o.threads })], env);
  }
  return lineWorker(side, process.execPath, [fileURLToPath(import.meta.url), '--worker', '--threads', String(o.threads)], env);
}

const fmt = (n, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.worker) return convzooWorker(o);
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown cpu';
  const load0 = os.loadavg();
  const t00 = performance.now();
  const rows = [];
  for (const id of o.models) {
    // Fresh processes per model: each peak is that model's alone.
    const workers = Object.fromEntries(SIDES.map((s) => [s, startWorker(s, o)]));
    const hello = {};
    for (const s of SIDES) hello[s] = await workers[s].hello;
    const loaded = {};
    for (const s of SIDES) loaded[s] = await workers[s].ask(JSON.stringify({ cmd: 'load', model: id, batch: o.batch, size: o.size, precision: s.slice(3) }));
    const times = Object.fromEntries(SIDES.map((s) => [s, []]));
    const last = {};
    for (let i = 0; i < o.warmup + o.steps; i++) {
      for (let j = 0; j < SIDES.length; j++) {
        const s = SIDES[(i + j) % SIDES.length];
        const r = await workers[s].ask(JSON.stringify({ cmd: 'step' }));
        if (!Number.isFinite(r.loss)) throw new Error(`${s} ${id}: loss ${r.loss}`);
        if (i >= o.warmup) times[s].push(r.t);
        last[s] = r;
      }
    }
    for (const s of SIDES) workers[s].stop(JSON.stringify({ cmd: 'quit' }));
    const step = Object.fromEntries(SIDES.map((s) => [s, median(times[s])]));
    const row = { id, step, rss: Object.fromEntries(SIDES.map((s) => [s, last[s].rss])), params: loaded['cz-fp32'].params, torch: hello['pt-fp32'].version };
    rows.push(row);
    console.log(
      `${id} batch ${o.batch}: step ${SIDES.map((s) => `${s} ${fmt(step[s], 3)} s`).join(', ')} | ` +
        `bf16/fp32 speed-up convzoo ${fmt(step['cz-fp32'] / step['cz-bf16'])}x, PyTorch ${fmt(step['pt-fp32'] / step['pt-bf16'])}x | ` +
        `peak RSS MiB ${SIDES.map((s) => `${s} ${fmt(row.rss[s], 0)}`).join(', ')}`,
    );
  }
  const load1 = os.loadavg();
  console.log(
    `\n${cpu}, ${os.cpus().length} cpus; libtorch/torch ${rows[0]?.torch}; ${o.threads} threads; batch ${o.batch} at ${o.size}x${o.size}; median of ${o.steps} steps after ${o.warmup}; ` +
      `load average ${load0.map((x) => x.toFixed(2)).join(' ')} before, ${load1.map((x) => x.toFixed(2)).join(' ')} after; ${((performance.now() - t00) / 60000).toFixed(1)} min.\n`,
  );
  const cols = [
    'model',
    'convzoo fp32 s/step',
    'convzoo bf16 s/step',
    'convzoo bf16/fp32',
    'PyTorch fp32 s/step',
    'PyTorch bf16 s/step',
    'PyTorch bf16/fp32',
    'convzoo/PyTorch fp32',
    'convzoo/PyTorch bf16',
    'peak RSS MiB: convzoo fp32 / PyTorch fp32',
    'convzoo bf16 / PyTorch bf16',
  ];
  console.log(`| ${cols.join(' | ')} |`);
  console.log(`|${cols.map((_, i) => (i ? '---:' : '---')).join('|')}|`);
  for (const r of rows) {
    const s = r.step;
    console.log(
      `| ${r.id} | ${fmt(s['cz-fp32'], 3)} | ${fmt(s['cz-bf16'], 3)} | **${fmt(s['cz-fp32'] / s['cz-bf16'])}x** | ${fmt(s['pt-fp32'], 3)} | ${fmt(s['pt-bf16'], 3)} | ` +
        `${fmt(s['pt-fp32'] / s['pt-bf16'])}x | ${fmt(s['pt-fp32'] / s['cz-fp32'])}x | ${fmt(s['pt-bf16'] / s['cz-bf16'])}x | ` +
        `${fmt(r.rss['cz-fp32'], 0)} / ${fmt(r.rss['pt-fp32'], 0)} | ${fmt(r.rss['cz-bf16'], 0)} / ${fmt(r.rss['pt-bf16'], 0)} |`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
