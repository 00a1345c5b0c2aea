#!/usr/bin/env node
// Engine benchmark: convzoo against PyTorch (Debian's /usr/bin/python3 torch, the same libtorch) in one run.
//
//   npx tsc -p tsconfig.json && node bench/engine.mjs [--threads 2] [--batch 8] [--pairs 16] [--dtype float32]
//
// 1. A training step (forward + backward + SGD step with momentum) of a ResNet-sized stack of 3x3
//    conv-bn-relu blocks: 64 channels at 56x56, 128 at 28x28, 256 at 14x14, then pool + linear.
// 2. Per-op overhead: adds of tiny tensors per second.
//
// Both sides run as long-lived worker processes driven in lockstep: the driver asks one for a step,
// then the other (alternating who goes first), so consecutive steps of the two sides see the same
// machine. On a shared virtual machine the CPU time of the very same step swings by up to 10x with the
// host's load; comparing each adjacent pair of steps (and each side's fastest step) cancels that out.
// PyTorch runs with glibc's mmap and trim thresholds raised (MALLOC_MMAP_THRESHOLD_ at glibc's
// maximum, 32 MiB; MALLOC_TRIM_THRESHOLD_ 1 GiB), its best setting here, as convzoo's addon does for itself,
// and with the OpenMP wait policy convzoo sets (OMP_WAIT_POLICY=PASSIVE unless the environment says otherwise).
import { createInterface } from 'node:readline';
import { lineWorker, median } from './worker_client.mjs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';

function parseArgs(argv) {
  const o = { threads: 2, batch: 8, pairs: 16, warmup: 2, dtype: 'float32', opsSeconds: 0.3, opsPairs: 3, worker: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'worker') o.worker = argv[++i];
    else if (k in o) o[k] = k === 'dtype' ? argv[++i] : Number(argv[++i]);
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return o;
}

// The network, as data, shared by both sides: [inChannels, outChannels, stride] per conv-bn-relu block.
const BLOCKS = [
  [64, 64, 1],
  [64, 64, 1],
  [64, 128, 2],
  [128, 128, 1],
  [128, 256, 2],
  [256, 256, 1],
];
const CLASSES = 10;
const INPUT = [64, 56, 56];

// ---------------------------------------------------------------------------------------------------
// convzoo worker: answers "step" and "ops" lines on stdin with one JSON line each.
async function convzooWorker(o) {
  const cz = await import(path.join(here, '../dist/index.js'));
  const { nn, F } = cz;
  cz.setNumThreads(o.threads);
  cz.manualSeed(0);
  const layers = [];
  for (const [cin, cout, s] of BLOCKS) {
    layers.push(new nn.Conv2d(cin, cout, 3, { stride: s, padding: 1, bias: false }), new nn.BatchNorm2d(cout), new nn.ReLU());
  }
  const model = new nn.Sequential(...layers, new nn.AdaptiveAvgPool2d(1), new nn.Flatten(), new nn.Linear(256, CLASSES));
  if (o.dtype !== 'float32') model.to(o.dtype);
  const opt = new cz.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const x = cz.randn([o.batch, ...INPUT], { dtype: o.dtype });
  const y = cz.randint(0, CLASSES, [o.batch]);
  const step = () =>
    cz.tidy(() => {
      opt.zeroGrad();
      const loss = F.crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      return loss.item();
    });
  for (let i = 0; i < o.warmup; i++) step();
  // Per-op overhead: c = a + b on 4-element tensors, freed right away / 100 per tidy scope; a += b.
  const a = cz.ones([4]),
    b = cz.ones([4]);
  const opsPerSecond = (fn) => {
    let n = 0;
    const t0 = performance.now();
    const stop = t0 + o.opsSeconds * 1000;
    while (performance.now() < stop) {
      fn();
      n += 100;
    }
    return n / ((performance.now() - t0) / 1000);
  };
  const opsCases = {
    'c = a.add(b); c.dispose()': () => {
      for (let i = 0; i < 100; i++) a.add(b).dispose();
    },
    'a.add(b) x100 in tidy()': () =>
      cz.tidy(() => {
        for (let i = 0; i < 100; i++) a.add(b);
      }),
    'a.add_(b)': () => {
      for (let i = 0; i < 100; i++) a.add_(b);
    },
  };
  for (const fn of Object.values(opsCases)) opsPerSecond(fn); // warm-up (JIT)
  const hello = { version: cz.torchVersion, threads: cz.getNumThreads(), allocator: cz.memory().cachingAllocator ? 'caching' : 'system' };
  process.stdout.write(JSON.stringify(hello) + '\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'step') {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      step();
      const t = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      process.stdout.write(JSON.stringify({ t, cpu: (c.user + c.system) / 1e6 }) + '\n');
    } else if (line === 'ops') {
      process.stdout.write(JSON.stringify(Object.fromEntries(Object.entries(opsCases).map(([k, fn]) => [k, opsPerSecond(fn)]))) + '\n');
    } else break;
  }
}

// PyTorch worker: the same network, optimizer, step and protocol.
const PY_WORKER = `
import json, sys, time, torch, torch.nn as nn, torch.nn.functional as F
o = json.loads(sys.argv[1])
torch.set_num_threads(o['threads'])
torch.manual_seed(0)
dtype = getattr(torch, o['dtype'])
layers = []
for cin, cout, s in o['blocks']:
    layers += [nn.Conv2d(cin, cout, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, o['classes'])).to(dtype)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(o['batch'], *o['input'], dtype=dtype)
y = torch.randint(0, o['classes'], (o['batch'],))
def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()
for _ in range(o['warmup']): step()
a = torch.ones(4); b = torch.ones(4)
def ops_per_second(fn):
    n = 0; t0 = time.perf_counter(); stop = t0 + o['opsSeconds']
    while time.perf_counter() < stop:
        fn(); n += 100
    return n / (time.perf_counter() - t0)
def add100():
    for _ in range(100): c = a + b
def add_100():
    with torch.no_grad():
        for _ in range(100): a.add_(b)
print(json.dumps({'version': torch.__version__, 'threads': torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    line = line.strip()
    if line == 'step':
        c0 = time.process_time(); t0 = time.perf_counter(); step()
        print(json.dumps({'t': time.perf_counter() - t0, 'cpu': time.process_time() - c0}), flush=True)
    elif line == 'ops':
        print(json.dumps({'c = a + b': ops_per_second(add100), 'a.add_(b)': ops_per_second(add_100)}), flush=True)
    else:
        break
`;

/** A worker process and a function that sends one command and resolves with its JSON answer. */
function startWorker(side, o) {
  const env = { ...process.env };
  let cmd, args;
  if (side === 'convzoo') {
    cmd = process.execPath;
    args = [
      fileURLToPath(import.meta.url),
      '--worker',
      'convzoo',
      ...Object.entries(o)
        .filter(([k]) => k !== 'worker')
        .flatMap(([k, v]) => [`--${k}`, String(v)]),
    ];
  } else {
    cmd = PY;
    args = ['-c', PY_WORKER, JSON.stringify({ ...o, blocks: BLOCKS, classes: CLASSES, input: INPUT })];
    env.MALLOC_MMAP_THRESHOLD_ = String(32 << 20); // glibc's maximum
    env.MALLOC_TRIM_THRESHOLD_ = String(1 << 30);
    // The OpenMP wait policy convzoo uses (src/native.ts defaults it to PASSIVE), so that both sides'
    // thread teams behave alike next to other busy processes.
    env.OMP_WAIT_POLICY ??= 'PASSIVE';
  }
  const w = lineWorker(side, cmd, args, env);
  return { hello: w.hello, ask: (cmd) => w.ask(cmd), stop: () => w.stop('quit') };
}

const fmt = (n, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.worker === 'convzoo') {
    await convzooWorker(o);
    return;
  }
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown cpu';
  const load0 = os.loadavg()[0].toFixed(2);
  const workers = { convzoo: startWorker('convzoo', o), pytorch: startWorker('pytorch', o) };
  const czHello = await workers.convzoo.hello,
    pyHello = await workers.pytorch.hello;
  const steps = { convzoo: [], pytorch: [] };
  const ratios = [];
  for (let i = 0; i < o.pairs; i++) {
    const order = i % 2 ? ['pytorch', 'convzoo'] : ['convzoo', 'pytorch'];
    const pair = {};
    for (const side of order) {
      pair[side] = await workers[side].ask('step');
      steps[side].push(pair[side]);
    }
    ratios.push(pair.pytorch.t / pair.convzoo.t);
  }
  const ops = { convzoo: [], pytorch: [] };
  for (let i = 0; i < o.opsPairs; i++) {
    for (const side of i % 2 ? ['pytorch', 'convzoo'] : ['convzoo', 'pytorch']) ops[side].push(await workers[side].ask('ops'));
  }
  workers.convzoo.stop();
  workers.pytorch.stop();

  const machine = `${cpu}, ${os.cpus().length} cpus, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, load ${load0}..${os.loadavg()[0].toFixed(2)}`;
  const tag =
    `[${machine} | libtorch ${czHello.version} (torch ${pyHello.version}) | ${o.dtype} | batch ${o.batch} | threads ${czHello.threads}/${pyHello.threads}` +
    ` | OMP_WAIT_POLICY ${process.env.OMP_WAIT_POLICY ?? 'PASSIVE'}]`;
  const best = (side, k) => Math.min(...steps[side].map((s) => s[k]));
  const czStep = best('convzoo', 't'),
    pyStep = best('pytorch', 't');
  const blocks = BLOCKS.map(([a, b, s]) => `${a}->${b}${s > 1 ? '/2' : ''}`).join(' ');
  const medRatio = median(ratios);
  console.log(`${tag} train step: conv-bn-relu x${BLOCKS.length} (${blocks}) on ${INPUT.join('x')} + linear, SGD momentum, ${o.pairs} step pairs in lockstep`);
  console.log(
    `${tag}   fastest step: convzoo ${fmt(o.batch / czStep, 2)} img/s (${fmt(czStep * 1000, 0)} ms), pytorch ${fmt(o.batch / pyStep, 2)} img/s (${fmt(pyStep * 1000, 0)} ms), ` +
      `throughput ratio convzoo/pytorch ${fmt(pyStep / czStep, 3)}`,
  );
  console.log(
    `${tag}   median of the ${o.pairs} paired ratios convzoo/pytorch ${fmt(medRatio, 3)} ${medRatio >= 0.95 ? '(ok, >= 0.95)' : '(BELOW 0.95)'}; ` +
      `median step convzoo ${fmt(median(steps.convzoo.map((s) => s.t)) * 1000, 0)} ms, pytorch ${fmt(median(steps.pytorch.map((s) => s.t)) * 1000, 0)} ms`,
  );
  console.log(
    `${tag}   least CPU time of a step (all threads): convzoo ${fmt(best('convzoo', 'cpu') * 1000, 0)} ms, pytorch ${fmt(best('pytorch', 'cpu') * 1000, 0)} ms`,
  );
  const bestOps = (side, k) => Math.max(...ops[side].map((x) => x[k]));
  for (const k of Object.keys(ops.convzoo[0])) {
    const pyKey = k.includes('add_') ? 'a.add_(b)' : 'c = a + b';
    const c = bestOps('convzoo', k),
      p = bestOps('pytorch', pyKey);
    console.log(
      `${tag} per-op overhead, 4-element float32 tensors: convzoo ${k}: ${fmt(c / 1e6, 2)} M ops/s (${fmt(1e6 / c, 2)} us/op), ` +
        `pytorch ${pyKey}: ${fmt(p / 1e6, 2)} M ops/s (${fmt(1e6 / p, 2)} us/op), ratio ${fmt(c / p, 2)}`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
