#!/usr/bin/env node
// Load and soak of `convzoo serve` on loopback, with autocannon. Bounded in time and count.
//
//   npx tsc -p tsconfig.json
//   node bench/serve.mjs [--model resnet18] [--weights W] [--concurrency 1,4,16] [--max-batch 16,1]
//                        [--seconds 10] [--soak-requests 10000] [--threads N] [--skip-load] [--skip-soak]
//
// load: for each --max-batch (16 = dynamic batching, 1 = batch-1 serving) a server in a child process
//   (the real CLI, so the load generator does not share its event loop), then for each route
//   (/v2/models/M/infer with one JSON image [1, 3, H, W], /v1/models/M/classify with a 320 x 240 JPEG)
//   and each concurrency: throughput, p50 / p99 latency, and the mean batch size (the server's
//   convzoo_batch_size histogram, before and after).
// soak: one server (--max-batch 16, --max-queue 64); --soak-requests requests at concurrency 16 in ten
//   slices after a warm-up of a fifth as many, alternating infer and classify, RSS read from /metrics
//   after each slice (flat = within 10% of the RSS after the warm-up); every 5xx counted; then an
//   overload phase (concurrency 256, more than the queue holds: 503s expected, nothing else); then
//   /v2/health/ready must answer 200 within 30 s (the backlog drains, the pressure checks clear) and one
//   infer after it. Exits 1 when the soak fails.
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import sharp from 'sharp';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(here, '../dist/cli/main.js');
const cz = await import(path.join(here, '../dist/index.js'));

function parse(argv) {
  const o = {
    model: 'resnet18',
    weights: undefined,
    concurrency: [1, 4, 16],
    maxBatch: [16, 1],
    seconds: 10,
    soakRequests: 10_000,
    threads: undefined,
    skipLoad: false,
    skipSoak: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (k === 'skipLoad' || k === 'skipSoak') {
      o[k] = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${argv[i - 1]} needs a value`);
    if (k === 'concurrency' || k === 'maxBatch') o[k] = v.split(',').map(Number);
    else if (k === 'model' || k === 'weights') o[k] = v;
    else if (k in o) o[k] = Number(v);
    else throw new Error(`unknown option ${argv[i - 1]} (see the top of bench/serve.mjs)`);
  }
  return o;
}

/** Starts `convzoo serve` in a child process; resolves when it listens, with its URL and a stop(). */
async function startServer(o, extra) {
  const args = [
    CLI,
    'serve',
    '--model',
    o.model,
    '--port',
    '0',
    ...(o.weights ? ['--weights', o.weights] : []),
    ...(o.threads ? ['--threads', String(o.threads)] : []),
    ...extra,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = / at (http:\/\/\S+)$/.exec(line);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`convzoo serve exited (${code}): ${stderr}`)));
  });
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`convzoo serve exited with ${code} after SIGTERM: ${stderr}`);
    },
  };
}

/** A metric's value from the Prometheus text (summed over the series that match `labels`). */
async function metric(url, name, labels = '') {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(name) && line.includes(labels) && /^[\w]+(\{[^}]*\})? /.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

const batchStats = async (url, model) => ({
  sum: await metric(url, 'convzoo_batch_size_sum', `model="${model}"`),
  count: await metric(url, 'convzoo_batch_size_count', `model="${model}"`),
});

/** Request bodies: a KServe v2 JSON image and a JPEG. */
async function bodies(o) {
  const meta = cz.modelMeta(o.model);
  const [c, h, w] = meta.inputSize;
  let s = 1;
  const data = Array.from({ length: c * h * w }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.round((s / 2147483648 - 0.5) * 4000) / 1000; // three decimals keep the JSON smaller
  });
  const infer = JSON.stringify({ inputs: [{ name: 'input', shape: [1, c, h, w], datatype: 'FP32', data }] });
  const jpeg = await sharp({ create: { width: 320, height: 240, channels: 3, noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .jpeg({ quality: 85 })
    .toBuffer();
  return {
    infer: { path: `/v2/models/${o.model}/infer`, method: 'POST', headers: { 'content-type': 'application/json' }, body: infer },
    classify: { path: `/v1/models/${o.model}/classify`, method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: jpeg },
  };
}

/** One autocannon run; resolves to its result (throws on connection errors). */
function cannon(url, requests, opts) {
  return autocannon({ url, requests, pipelining: 1, timeout: 60, ...opts });
}

const fivexx = (r) => Object.entries(r.statusCodeStats ?? {}).reduce((n, [code, s]) => n + (code.startsWith('5') ? s.count : 0), 0);
const codes = (r) =>
  Object.entries(r.statusCodeStats ?? {})
    .map(([code, s]) => `${code}: ${s.count}`)
    .join(', ');

function header(o) {
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown cpu';
  return `${cpu}, ${os.cpus().length} cpus | node ${process.version} | ${o.model}${o.weights ? ` (${o.weights})` : ' (random weights)'} | float32 | threads ${o.threads ?? 'one per core'} | load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`;
}

async function load(o, b) {
  console.log(`# load: ${header(o)} | ${o.seconds} s per case`);
  console.log('| route | max batch | concurrency | req/s | p50 ms | p99 ms | mean batch | non-2xx |');
  console.log('|---|---|---|---|---|---|---|---|');
  const rows = [];
  for (const maxBatch of o.maxBatch) {
    const server = await startServer(o, ['--max-batch', String(maxBatch), '--max-delay-ms', '5']);
    try {
      for (const route of ['infer', 'classify']) {
        await cannon(server.url, [b[route]], { connections: 4, amount: 40 }); // warm-up
        for (const connections of o.concurrency) {
          const before = await batchStats(server.url, o.model);
          const r = await cannon(server.url, [b[route]], { connections, duration: o.seconds });
          const after = await batchStats(server.url, o.model);
          const meanBatch = (after.sum - before.sum) / Math.max(1, after.count - before.count);
          const row = { route, maxBatch, connections, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, meanBatch, non2xx: r.non2xx + r.errors };
          rows.push(row);
          console.log(
            `| ${b[route].path} | ${maxBatch} | ${connections} | ${row.rps.toFixed(1)} | ${row.p50} | ${row.p99} | ${meanBatch.toFixed(2)} | ${row.non2xx} |`,
          );
        }
      }
    } finally {
      await server.stop();
    }
  }
  for (const route of ['infer', 'classify']) {
    const top = Math.max(...o.concurrency);
    const on = rows.find((r) => r.route === route && r.connections === top && r.maxBatch > 1);
    const off = rows.find((r) => r.route === route && r.connections === top && r.maxBatch === 1);
    if (on && off) console.log(`# ${route} at concurrency ${top}: dynamic batching ${(on.rps / off.rps).toFixed(2)}x batch-1 serving's throughput`);
  }
}

const RECOVERY_SECONDS = 30;

async function soak(o, b) {
  console.log(`# soak: ${header(o)} | ${o.soakRequests} requests at concurrency 16, then overload at 256`);
  const server = await startServer(o, ['--max-batch', '16', '--max-delay-ms', '5', '--max-queue', '64']);
  const failures = [];
  try {
    // Warm-up (a fifth of the count, not measured): V8's heap and the JIT settle; the server's own warm-up
    // (a batch of every size before it reports ready) has already filled the allocator's cache.
    const warm = await cannon(server.url, [b.infer, b.classify], { connections: 16, amount: Math.ceil(o.soakRequests / 5), duration: 1200 });
    const base = await metric(server.url, 'convzoo_process_resident_memory_bytes');
    console.log(`warm-up: ${warm.requests.total} requests (${codes(warm)}), RSS ${(base / 2 ** 20).toFixed(0)} MiB`);
    const slices = 10;
    const per = Math.ceil(o.soakRequests / slices);
    const rss = [];
    let served5xx = fivexx(warm);
    let done = 0;
    const t0 = Date.now();
    for (let i = 0; i < slices; i++) {
      const r = await cannon(server.url, [b.infer, b.classify], { connections: 16, amount: per, duration: 600 });
      done += r.requests.total;
      served5xx += fivexx(r);
      rss.push(await metric(server.url, 'convzoo_process_resident_memory_bytes'));
      // Where the memory is: V8's heap, libtorch's live tensors and its allocator's cache of freed blocks.
      const mib = async (name) => ((await metric(server.url, name)) / 2 ** 20).toFixed(0);
      console.log(
        `slice ${i + 1}/${slices}: ${r.requests.total} requests (${codes(r)}), ${r.requests.average.toFixed(1)} req/s, RSS ${(rss[i] / 2 ** 20).toFixed(0)} MiB ` +
          `(V8 heap ${await mib('convzoo_nodejs_heap_size_used_bytes')}, tensors ${await mib('convzoo_tensor_bytes')}, allocator cache ${await mib('convzoo_allocator_cached_bytes')})`,
      );
    }
    const drift = Math.max(...rss.map((x) => Math.abs(x - base) / base));
    console.log(
      `# ${done} requests in ${((Date.now() - t0) / 1000).toFixed(0)} s; 5xx: ${served5xx}; RSS after warm-up ${(base / 2 ** 20).toFixed(0)} MiB, largest change since ${(drift * 100).toFixed(1)}%`,
    );
    if (served5xx > 0) failures.push(`${served5xx} 5xx answers during the soak`);
    if (drift > 0.1) failures.push(`RSS moved by ${(drift * 100).toFixed(1)}% (more than 10%)`);

    const over = await cannon(server.url, [b.infer], { connections: 256, duration: Math.min(o.seconds, 10) });
    const c503 = over.statusCodeStats?.['503']?.count ?? 0;
    const other5xx = fivexx(over) - c503;
    console.log(`# overload (256 connections, queue of 64): ${codes(over)}; connection errors ${over.errors}`);
    if (c503 === 0) failures.push('the overload phase got no 503');
    if (other5xx > 0) failures.push(`${other5xx} 5xx other than 503 in the overload phase`);

    // The queue drains and the pressure checks clear (event-loop delay is sampled each second): healthy
    // again within RECOVERY_SECONDS.
    const t1 = Date.now();
    let ready;
    do {
      ready = await fetch(`${server.url}/v2/health/ready`);
      if (ready.status !== 200) await new Promise((r) => setTimeout(r, 250));
    } while (ready.status !== 200 && Date.now() - t1 < RECOVERY_SECONDS * 1000);
    const recovered = ((Date.now() - t1) / 1000).toFixed(1);
    const last = await fetch(`${server.url}${b.infer.path}`, { method: 'POST', headers: b.infer.headers, body: b.infer.body });
    console.log(`# after: /v2/health/ready ${ready.status} (after ${recovered} s), infer ${last.status}`);
    if (ready.status !== 200 || last.status !== 200) failures.push('the server is not healthy after the soak');
  } finally {
    await server.stop();
  }
  console.log(failures.length ? `# soak FAILED: ${failures.join('; ')}` : '# soak passed: RSS flat, no 5xx but the overload 503s, healthy afterwards');
  return failures.length === 0;
}

const o = parse(process.argv.slice(2));
const b = await bodies(o);
if (!o.skipLoad) await load(o, b);
if (!o.skipSoak && !(await soak(o, b))) process.exitCode = 1;
