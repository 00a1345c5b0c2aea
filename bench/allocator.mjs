#!/usr/bin/env node
// Why convzoo installs a caching CPU allocator: the same forward loop, with activations far above
// glibc's largest mmap threshold (32 MiB), run in a child process with CONVZOO_ALLOCATOR=system
// (plain libtorch + glibc: every large activation is mmap'ed, page-faulted in, zeroed by the kernel
// and munmap'ed again on free) and with the default caching allocator (blocks are reused).
//
//   npx tsc -p tsconfig.json && node bench/allocator.mjs [--threads 2] [--batch 16] [--iters 4] [--rounds 2]
//
// The network is MobileNet-like (memory-bound depthwise and 1x1 convolutions) at 224x224: each
// activation of a batch of 16 is 16 x 32 x 224 x 224 x 4 bytes = 98 MiB.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = { threads: 2, batch: 16, iters: 4, warmup: 1, rounds: 2, worker: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'worker') o.worker = true;
    else if (k in o) o[k] = Number(argv[++i]);
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return o;
}

async function worker(o) {
  const cz = await import(path.join(here, '../dist/index.js'));
  const { nn } = cz;
  cz.setNumThreads(o.threads);
  cz.manualSeed(0);
  const C = 32;
  const block = () => [
    new nn.Conv2d(C, C, 3, { padding: 1, groups: C, bias: false }),
    new nn.BatchNorm2d(C),
    new nn.ReLU6(),
    new nn.Conv2d(C, C, 1, { bias: false }),
    new nn.BatchNorm2d(C),
  ];
  const model = new nn.Sequential(
    new nn.Conv2d(3, C, 3, { padding: 1, bias: false }),
    new nn.BatchNorm2d(C),
    new nn.ReLU6(),
    ...block(),
    ...block(),
    new nn.AdaptiveAvgPool2d(1),
    new nn.Flatten(),
    new nn.Linear(C, 10),
  ).eval();
  const x = cz.randn([o.batch, 3, 224, 224]);
  const forward = () => cz.tidy(() => cz.inferenceMode(() => model.forward(x).sum().item()));
  for (let i = 0; i < o.warmup; i++) forward();
  const ru0 = process.resourceUsage();
  const t0 = performance.now();
  for (let i = 0; i < o.iters; i++) forward();
  const seconds = (performance.now() - t0) / 1000;
  const ru = process.resourceUsage();
  return {
    imgPerSecond: (o.iters * o.batch) / seconds,
    minorFaultsPerIter: (ru.minorPageFault - ru0.minorPageFault) / o.iters,
    cpuSecondsPerIter: (ru.userCPUTime + ru.systemCPUTime - ru0.userCPUTime - ru0.systemCPUTime) / 1e6 / o.iters,
    systemSecondsPerIter: (ru.systemCPUTime - ru0.systemCPUTime) / 1e6 / o.iters,
    maxRssMiB: ru.maxRSS / 1024,
    caching: cz.memory().cachingAllocator,
    version: cz.torchVersion,
    threads: cz.getNumThreads(),
  };
}

function run(mode, o) {
  const env = { ...process.env };
  if (mode === 'system') env.CONVZOO_ALLOCATOR = 'system';
  else delete env.CONVZOO_ALLOCATOR;
  const args = [
    fileURLToPath(import.meta.url),
    '--worker',
    ...Object.entries(o)
      .filter(([k]) => k !== 'worker')
      .flatMap(([k, v]) => [`--${k}`, String(v)]),
  ];
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`worker (${mode}) failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const fmt = (n, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.worker) {
    process.stdout.write(JSON.stringify(await worker(o)) + '\n');
    return;
  }
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown cpu';
  const machine = `${cpu}, ${os.cpus().length} cpus, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, load ${os.loadavg()[0].toFixed(2)}`;
  const res = { system: [], caching: [] };
  for (let r = 0; r < o.rounds; r++) for (const m of r % 2 ? ['caching', 'system'] : ['system', 'caching']) res[m].push(run(m, o));
  const best = (rs) => rs.reduce((a, b) => (b.imgPerSecond > a.imgPerSecond ? b : a));
  const sys = best(res.system),
    cach = best(res.caching);
  if (!cach.caching || sys.caching) throw new Error('CONVZOO_ALLOCATOR did not select the allocator');
  const tag = `[${machine} | libtorch ${sys.version} | float32 | batch ${o.batch} | threads ${sys.threads}]`;
  console.log(`${tag} inference forward, MobileNet-like convs at 224x224 (98 MiB activations), best of ${o.rounds} rounds x ${o.iters} iterations:`);
  for (const [name, r] of [
    ['CONVZOO_ALLOCATOR=system', sys],
    ['caching allocator (default)', cach],
  ]) {
    console.log(
      `${tag}   ${name.padEnd(28)} ${fmt(r.imgPerSecond, 2)} img/s, ${fmt(r.minorFaultsPerIter, 0)} minor page faults/iteration, ` +
        `CPU ${fmt(r.cpuSecondsPerIter, 2)} s/iteration (kernel ${fmt(r.systemSecondsPerIter, 2)} s), max RSS ${fmt(r.maxRssMiB, 0)} MiB`,
    );
  }
  console.log(
    `${tag}   caching/system throughput ${fmt(cach.imgPerSecond / sys.imgPerSecond, 2)}x, page faults ${fmt(sys.minorFaultsPerIter / Math.max(1, cach.minorFaultsPerIter), 0)}x fewer`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
