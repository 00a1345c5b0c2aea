#!/usr/bin/env node
// How libgomp's waiting policy trades batch-1 latency against a busy neighbour (README: OMP_WAIT_POLICY,
// GOMP_SPINCOUNT). convzoo sets OMP_WAIT_POLICY=PASSIVE (src/native.ts): its threads sleep between
// parallel regions, which costs a wake-up per op; a short spin (GOMP_SPINCOUNT) saves it on an idle
// machine and takes cores from anything else running.
//
//   npx tsc -p tsconfig.json && node bench/omp_wait.mjs [--spins 10000,30000] [--threads 2]
//
// Each setting runs in a fresh child process (libgomp reads its environment when it loads): a resnet20
// training step at batch 128 on 1x28x28 (img/s) and a resnet50 eval forward at batch 1 (best of 8, ms);
// first on the idle machine, then beside one busy process (a child spinning in a loop).
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

async function child() {
  const cz = await import(path.join(here, '../dist/index.js'));
  const train = cz.buildModel('resnet20', { numClasses: 10, inChans: 1 });
  train.train();
  const opt = new cz.optim.SGD(train.parameters(), { lr: 0.05, momentum: 0.9 });
  const images = cz.randn([128, 1, 28, 28]);
  const labels = cz.tensor(
    Array.from({ length: 128 }, (_, i) => i % 10),
    [128],
    { dtype: 'int64' },
  );
  for (let i = 0; i < 3; i++) cz.trainStep(train, opt, { images, labels });
  const steps = 15;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) cz.trainStep(train, opt, { images, labels });
  const trainImgPerS = (steps * 128) / ((performance.now() - t0) / 1000);
  const net = cz.buildModel('resnet50');
  net.eval();
  const x = cz.randn([1, 3, 224, 224]);
  const times = cz.noGrad(() => {
    for (let i = 0; i < 3; i++) net.forward(x).dispose();
    return Array.from({ length: 8 }, () => {
      const t = performance.now();
      net.forward(x).dispose();
      return performance.now() - t;
    });
  });
  console.log(JSON.stringify({ trainImgPerS, forwardMs: Math.min(...times) }));
}

function measure(spins, threads) {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: 'PASSIVE' };
  if (spins > 0) env.GOMP_SPINCOUNT = String(spins);
  else delete env.GOMP_SPINCOUNT;
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child'], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') return child();
  const opt = (name, dflt) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : dflt;
  };
  const spins = [0, ...String(opt('spins', '10000,30000')).split(',').map(Number)];
  const threads = Number(opt('threads', 2));
  if (!spins.every((s) => Number.isInteger(s) && s >= 0) || !(threads >= 1)) throw new Error('--spins takes integers >= 0, --threads one >= 1');
  console.log(`# ${os.cpus()[0]?.model.trim()}, ${os.cpus().length} cpus | threads ${threads} | load average ${os.loadavg()[0].toFixed(2)}`);
  console.log('| neighbour | GOMP_SPINCOUNT | resnet20 train img/s | resnet50 batch-1 forward ms |');
  console.log('|---|---:|---:|---:|');
  for (const busy of [false, true]) {
    const neighbour = busy ? spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }) : null;
    try {
      for (const s of spins) {
        const r = measure(s, threads);
        console.log(`| ${busy ? 'one busy process' : 'none'} | ${s || '- (passive)'} | ${r.trainImgPerS.toFixed(0)} | ${r.forwardMs.toFixed(1)} |`);
      }
    } finally {
      neighbour?.kill('SIGKILL');
    }
  }
}

await main();
