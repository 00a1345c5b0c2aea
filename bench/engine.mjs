#!/usr/bin/env node
// Engine benchmark: convzoo against PyTorch (Debian's /usr/bin/python3 torch, the same libtorch) in one run.
//
//   npx tsc -p tsconfig.json && node bench/engine.mjs [--threads 2] [--batch 8] [--steps 6] [--rounds 3]
//
// 1. A training step (forward + backward + SGD step with momentum) of a ResNet-sized stack of 3x3
//    conv-bn-relu blocks: 64 channels at 56x56, 128 at 28x28, 256 at 14x14, then pool + linear.
// 2. Per-op overhead: adds of tiny tensors per second.
// Each side runs in its own fresh process, alternating (cz, py, cz, py, ...) so that load from other
// users of the machine hits both alike; the best round of each side counts. PyTorch runs with glibc's
// mmap and trim thresholds raised (MALLOC_MMAP_THRESHOLD_ at glibc's maximum, 32 MiB; trim 1 GiB), its
// best setting here, as convzoo's addon does for itself.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const PY = '/usr/bin/python3';

function parseArgs(argv) {
  const o = { threads: 2, batch: 8, steps: 6, warmup: 2, rounds: 3, dtype: 'float32', opsSeconds: 1.5, worker: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'worker') o.worker = argv[++i];
    else if (k in o) o[k] = k === 'dtype' ? argv[++i] : Number(argv[++i]);
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return o;
}

// The network, as data, shared by both sides: [inChannels, outChannels, stride] per conv-bn-relu block.
const BLOCKS = [[64, 64, 1], [64, 64, 1], [64, 128, 2], [128, 128, 1], [128, 256, 2], [256, 256, 1]];
const CLASSES = 10;
const INPUT = [64, 56, 56];

// ---------------------------------------------------------------------------------------------------
// convzoo worker
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
  const step = () => cz.tidy(() => {
    opt.zeroGrad();
    const loss = F.crossEntropy(model.forward(x), y);
    loss.backward();
    opt.step();
    return loss.item();
  });
  for (let i = 0; i < o.warmup; i++) step();
  const times = [], cpu = [];
  for (let i = 0; i < o.steps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    step();
    times.push((performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e6);
  }
  // Per-op overhead: c = a + b on 4-element tensors, freed right away, and 100 per tidy scope.
  const a = cz.ones([4]), b = cz.ones([4]);
  const opsPerSecond = (fn) => {
    let n = 0;
    const end = performance.now() + o.opsSeconds * 500;
    while (performance.now() < end) { fn(); n += 100; } // warm-up, half the time
    n = 0;
    const t0 = performance.now();
    const stop = t0 + o.opsSeconds * 1000;
    while (performance.now() < stop) { fn(); n += 100; }
    return n / ((performance.now() - t0) / 1000);
  };
  const addDispose = opsPerSecond(() => { for (let i = 0; i < 100; i++) a.add(b).dispose(); });
  const addTidy = opsPerSecond(() => cz.tidy(() => { for (let i = 0; i < 100; i++) a.add(b); }));
  const addInPlace = opsPerSecond(() => { for (let i = 0; i < 100; i++) a.add_(b); });
  return { times, cpu, ops: { 'c = a.add(b); c.dispose()': addDispose, 'a.add(b) x100 in tidy()': addTidy, 'a.add_(b)': addInPlace },
    version: cz.torchVersion, threads: cz.getNumThreads(), allocator: cz.memory().cachingAllocator ? 'caching' : 'system' };
}

// ---------------------------------------------------------------------------------------------------
// PyTorch worker (same network, same optimizer, same step)
const PY_WORKER = String.raw`
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
times, cpu = [], []
for _ in range(o['steps']):
    c0 = time.process_time(); t0 = time.perf_counter(); step()
    times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
a = torch.ones(4); b = torch.ones(4)
def ops_per_second(fn):
    end = time.perf_counter() + o['opsSeconds'] / 2
    while time.perf_counter() < end: fn()
    n = 0; t0 = time.perf_counter(); stop = t0 + o['opsSeconds']
    while time.perf_counter() < stop:
        fn(); n += 100
    return n / (time.perf_counter() - t0)
def add100():
    for _ in range(100): c = a + b
def add_100():
    for _ in range(100): a.add_(b)
with torch.no_grad():
    inplace = ops_per_second(add_100)
print(json.dumps({'times': times, 'cpu': cpu, 'ops': {'c = a + b': ops_per_second(add100), 'a.add_(b)': inplace},
                  'version': torch.__version__, 'threads': torch.get_num_threads()}))
`;

function runWorker(side, o) {
  const env = { ...process.env };
  let cmd, args;
  if (side === 'convzoo') {
    cmd = process.execPath;
    args = [fileURLToPath(import.meta.url), '--worker', 'convzoo', ...Object.entries(o).filter(([k]) => k !== 'worker').flatMap(([k, v]) => [`--${k}`, String(v)])];
  } else {
    cmd = PY;
    args = ['-c', PY_WORKER, JSON.stringify({ ...o, blocks: BLOCKS, classes: CLASSES, input: INPUT })];
    env.MALLOC_MMAP_THRESHOLD_ = String(32 << 20); // glibc's maximum
    env.MALLOC_TRIM_THRESHOLD_ = String(1 << 30);
  }
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${side} worker failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const median = (xs) => { const s = [...xs].sort((p, q) => p - q); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const fmt = (n, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.worker === 'convzoo') { process.stdout.write(JSON.stringify(await convzooWorker(o)) + '\n'); return; }
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown cpu';
  const machine = `${cpu}, ${os.cpus().length} cpus, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB, load ${os.loadavg()[0].toFixed(2)}`;
  const results = { convzoo: [], pytorch: [] };
  for (let r = 0; r < o.rounds; r++) {
    for (const side of r % 2 ? ['pytorch', 'convzoo'] : ['convzoo', 'pytorch']) results[side].push(runWorker(side, o));
  }
  const cz = results.convzoo, py = results.pytorch;
  const tag = `[${machine} | libtorch ${cz[0].version} (torch ${py[0].version}) | ${o.dtype} | batch ${o.batch} | threads ${cz[0].threads}/${py[0].threads}]`;
  const bestStep = (rs) => Math.min(...rs.map((x) => median(x.times)));
  const czStep = bestStep(cz), pyStep = bestStep(py);
  const czImg = o.batch / czStep, pyImg = o.batch / pyStep;
  const blocks = BLOCKS.map(([a, b, s]) => `${a}->${b}${s > 1 ? '/2' : ''}`).join(' ');
  console.log(`${tag} train step, conv-bn-relu x${BLOCKS.length} (${blocks}) on ${INPUT.join('x')} + linear, SGD momentum:`);
  console.log(`${tag}   convzoo ${fmt(czImg, 2)} img/s (${fmt(czStep * 1000, 0)} ms/step), pytorch ${fmt(pyImg, 2)} img/s (${fmt(pyStep * 1000, 0)} ms/step), ` +
    `ratio convzoo/pytorch ${fmt(czImg / pyImg, 3)} ${czImg / pyImg >= 0.95 ? '(ok, >= 0.95)' : '(BELOW 0.95)'}`);
  console.log(`${tag}   per-round medians (ms/step): convzoo ${cz.map((x) => fmt(median(x.times) * 1000, 0)).join(', ')}; pytorch ${py.map((x) => fmt(median(x.times) * 1000, 0)).join(', ')}`);
  // CPU time (all threads) is less sensitive than wall time to other processes on the machine.
  const bestCpu = (rs) => Math.min(...rs.map((x) => median(x.cpu)));
  const czCpu = bestCpu(cz), pyCpu = bestCpu(py);
  console.log(`${tag}   CPU time per step (all threads): convzoo ${fmt(czCpu * 1000, 0)} ms, pytorch ${fmt(pyCpu * 1000, 0)} ms, ratio pytorch/convzoo ${fmt(pyCpu / czCpu, 3)}`);
  const bestOps = (rs, k) => Math.max(...rs.map((x) => x.ops[k]));
  for (const k of Object.keys(cz[0].ops)) {
    const pyKey = k.includes('add_') ? 'a.add_(b)' : 'c = a + b';
    const c = bestOps(cz, k), p = bestOps(py, pyKey);
    console.log(`${tag} per-op overhead, 4-element float32 tensors: convzoo ${k}: ${fmt(c / 1e6, 2)} M ops/s (${fmt(1e6 / c, 2)} us/op), ` +
      `pytorch ${pyKey}: ${fmt(p / 1e6, 2)} M ops/s (${fmt(1e6 / p, 2)} us/op), ratio ${fmt(c / p, 2)}`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
