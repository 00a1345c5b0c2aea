// Data-parallel training throughput: one process against two (DistributedDataParallel over gloo on
// loopback), at the same global batch, on this machine's cores; and the time of one all-reduce of the
// model's gradients (what the Reducer sends each step, in 25 MB buckets, overlapped with backward).
//
//   npx tsc -p tsconfig.json && node bench/ddp.mjs [--models resnet20,resnet50] [--steps 8] [--warmup 2]
//
// Each configuration runs in fresh processes on random images (no data loading, so the figures are the
// training step alone): 1 process with all the cores' threads; 2 processes with half each, without
// SyncBatchNorm (each rank's own batch statistics: convzoo's and PyTorch DDP's default) and with it
// (--sync-bn, which makes the two compute what one does). Reported: the median step time, images/s, and
// the speed-up over 1 process.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { freePort } from '../dist/cli/launch.js';

const SHAPES = {
  resnet20: { size: 28, channels: 1, classes: 10, batch: 128 },
  resnet50: { size: 224, channels: 3, classes: 1000, batch: 16 },
  mobilenet_v2: { size: 224, channels: 3, classes: 1000, batch: 16 },
};

function parse(argv) {
  const o = { models: ['resnet20', 'resnet50'], steps: 8, warmup: 2, worker: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--models') o.models = argv[++i].split(',');
    else if (k === '--steps') o.steps = Number(argv[++i]);
    else if (k === '--warmup') o.warmup = Number(argv[++i]);
    else if (k === '--worker') o.worker = JSON.parse(argv[++i]);
    else throw new Error(`unknown option ${k} (options: --models a,b --steps 8 --warmup 2)`);
  }
  for (const m of o.models) if (!SHAPES[m]) throw new Error(`no shape for ${m} (known: ${Object.keys(SHAPES).join(', ')})`);
  return o;
}

async function worker(cfg) {
  const cz = await import('../dist/index.js');
  const worldSize = Number(process.env.WORLD_SIZE ?? 1);
  if (worldSize > 1) cz.distributed.initProcessGroup({ timeoutSeconds: 600 });
  const rank = cz.distributed.getRank();
  cz.setNumThreads(cfg.threads);
  cz.manualSeed(0);
  const s = SHAPES[cfg.model];
  const model = cz.buildModel(cfg.model, { numClasses: s.classes, inChans: s.channels });
  model.train();
  let ddp;
  if (worldSize > 1) {
    if (cfg.syncBn) cz.distributed.convertSyncBatchNorm(model);
    ddp = new cz.distributed.DistributedDataParallel(model);
  }
  const local = s.batch / worldSize;
  const images = cz.randn([local, s.channels, s.size, s.size]);
  const labels = cz.randint(0, s.classes, [local]);
  const opt = new cz.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const times = [];
  for (let i = 0; i < cfg.warmup + cfg.steps; i++) {
    if (worldSize > 1) cz.distributed.barrier(); // every rank starts the step together
    const t0 = performance.now();
    cz.trainStep(model, opt, { images, labels }, { ddp });
    if (i >= cfg.warmup) times.push((performance.now() - t0) / 1000);
  }
  // One all-reduce of every gradient at once, as the buckets send them in a step (median of 5).
  let allReduce = null;
  if (worldSize > 1) {
    const numel = model.parameters().reduce((n, p) => n + p.numel(), 0);
    const buf = cz.zeros([numel]);
    const t = [];
    for (let i = 0; i < 6; i++) {
      cz.distributed.barrier();
      const t0 = performance.now();
      cz.distributed.allReduce(buf);
      if (i > 0) t.push((performance.now() - t0) / 1000);
    }
    allReduce = { seconds: t.sort((a, b) => a - b)[2], megabytes: (numel * 4) / 2 ** 20 };
  }
  ddp?.dispose();
  if (rank === 0) console.log(JSON.stringify({ times, allReduce }));
  if (worldSize > 1) cz.distributed.destroyProcessGroup();
}

async function runConfig(o, model, nproc, syncBn) {
  const cores = os.availableParallelism();
  const threads = Math.max(1, Math.floor(cores / nproc));
  const port = await freePort();
  const self = fileURLToPath(import.meta.url);
  const outs = await Promise.all(
    Array.from({ length: nproc }, (_, rank) => {
      const cfg = { model, threads, syncBn, steps: o.steps, warmup: o.warmup };
      const env = {
        ...process.env,
        OMP_NUM_THREADS: String(threads),
        RANK: String(rank),
        WORLD_SIZE: String(nproc),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
      };
      if (nproc === 1) for (const k of ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT']) delete env[k];
      const child = spawn(process.execPath, [self, '--worker', JSON.stringify(cfg)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      return new Promise((resolve, reject) =>
        child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${model} nproc ${nproc} rank ${rank} exited ${code}`)))),
      );
    }),
  );
  const r = JSON.parse(outs[0].trim().split('\n').at(-1));
  const median = [...r.times].sort((a, b) => a - b)[Math.floor(r.times.length / 2)];
  return { median, threads, allReduce: r.allReduce };
}

const o = parse(process.argv.slice(2));
if (o.worker) {
  await worker(o.worker);
} else {
  const cpu = os.cpus()[0]?.model.trim() ?? 'cpu';
  console.log(
    `# ${cpu}, ${os.availableParallelism()} cores | load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  const rows = [];
  for (const model of o.models) {
    const s = SHAPES[model];
    const one = await runConfig(o, model, 1, false);
    const sync = await runConfig(o, model, 2, true);
    const local = await runConfig(o, model, 2, false);
    for (const [label, r] of [
      ['1 process', one],
      ['2 processes, SyncBatchNorm', sync],
      ['2 processes, own batch norm', local],
    ]) {
      rows.push({
        model,
        label,
        batch: s.batch,
        threads: r.threads,
        step: r.median,
        ips: s.batch / r.median,
        speedup: one.median / r.median,
        allReduce: r.allReduce,
      });
      console.log(`${model} ${label}: step ${r.median.toFixed(3)} s, ${(s.batch / r.median).toFixed(1)} img/s, x${(one.median / r.median).toFixed(2)}`);
    }
  }
  console.log('\n| model | global batch | processes | threads each | step (s) | img/s | vs 1 process | all-reduce of the gradients |');
  console.log('|---|---:|---|---:|---:|---:|---:|---|');
  for (const r of rows) {
    const ar = r.allReduce ? `${(r.allReduce.seconds * 1000).toFixed(1)} ms for ${r.allReduce.megabytes.toFixed(1)} MB` : '-';
    console.log(`| ${r.model} | ${r.batch} | ${r.label} | ${r.threads} | ${r.step.toFixed(3)} | ${r.ips.toFixed(1)} | ${r.speedup.toFixed(2)}x | ${ar} |`);
  }
}
