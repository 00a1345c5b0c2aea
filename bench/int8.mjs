#!/usr/bin/env node
// int8 against float32 in onnxruntime-node, both exported by convzoo (cz.exportOnnx, batch norms folded).
//
//   npx tsc -p tsconfig.json
//   node bench/int8.mjs speed [--models resnet50,mobilenet_v2,efficientnet_b0] [--batch 1,16] [--threads 2] [--seconds 4]
//   node bench/int8.mjs accuracy --checkpoint runs/x/best.ckpt [--calibration-images 512] [--threads 2] [--bf16 1]
//
// speed: each model with random weights, exported as float32 and as int8 (calibrated on 64 random-normal
//   images: ranges do not change the work), run in one onnxruntime session each, alternating forwards;
//   throughput from the fastest forward and the median ratio of the pairs (as bench/models.mjs does).
// accuracy: a convzoo checkpoint trained on Fashion-MNIST, exported as float32 and as int8 calibrated on
//   the first N training images; top-1 of convzoo's eager forward and of both ONNX files on the 10,000
//   test images, and how often int8 and float32 agree; with --bf16 1 also convzoo's bfloat16 fast path
//   (optimizeForInference({ dtype: 'bfloat16' }), issue 13) against its float32 eager forward.
import os from 'node:os';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median } from './worker_client.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CACHE = path.join(here, '.cache', 'int8');
const cz = await import(path.join(here, '../dist/index.js'));
const { makeData } = await import(path.join(here, '../dist/train/datasets.js'));
const ort = await import('onnxruntime-node');

function parse(argv) {
  const o = { mode: argv[0], models: ['resnet50', 'mobilenet_v2', 'efficientnet_b0'], batch: [1, 16], threads: 2, seconds: 4, calibrationImages: 512, bf16: 0 };
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const v = argv[++i];
    if (k === 'models') o.models = v.split(',');
    else if (k === 'batch') o.batch = v.split(',').map(Number);
    else if (k === 'checkpoint') o.checkpoint = v;
    else if (k in o) o[k] = Number(v);
    else throw new Error(`unknown option ${argv[i - 1]}`);
  }
  if (o.mode !== 'speed' && o.mode !== 'accuracy') throw new Error('usage: node bench/int8.mjs speed|accuracy [options] (see the top of the file)');
  if (o.mode === 'accuracy' && !o.checkpoint) throw new Error('accuracy needs --checkpoint FILE');
  return o;
}

const sessionOptions = (o) => ({ executionProviders: ['cpu'], intraOpNumThreads: o.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
const fmt = (n, d = 2) => n.toFixed(d);

async function speed(o) {
  const machine = `${os.cpus()[0]?.model.replace(/\s+/g, ' ').trim()}, ${os.cpus().length} cpus`;
  console.log(
    `# ${machine} | onnxruntime-node ${ort.env.versions.common ?? ''} | threads ${o.threads} | load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  const rows = [];
  for (const id of o.models) {
    const model = cz.buildModel(id);
    const size = model.meta.inputSize[1];
    const f32 = path.join(CACHE, `${id}.fp32.onnx`);
    const i8 = path.join(CACHE, `${id}.int8.onnx`);
    const calibration = Array.from({ length: 4 }, () => cz.randn([16, 3, size, size]));
    await cz.exportOnnx(model, f32, { batch: 'dynamic' });
    await cz.exportOnnx(model, i8, { batch: 'dynamic', int8: { calibration } });
    for (const t of calibration) t.dispose();
    model.dispose();
    const sessions = { fp32: await ort.InferenceSession.create(f32, sessionOptions(o)), int8: await ort.InferenceSession.create(i8, sessionOptions(o)) };
    for (const batch of o.batch) {
      const data = Float32Array.from({ length: batch * 3 * size * size }, () => Math.random() * 2 - 1);
      const feed = { input: new ort.Tensor('float32', data, [batch, 3, size, size]) };
      const time = async (s) => {
        const t0 = performance.now();
        await sessions[s].run(feed);
        return (performance.now() - t0) / 1000;
      };
      await time('fp32');
      await time('int8');
      const ts = { fp32: [], int8: [] };
      const t00 = performance.now();
      while (ts.fp32.length < 3 || (performance.now() - t00 < o.seconds * 1000 && ts.fp32.length < 40)) {
        for (const s of ts.fp32.length % 2 ? ['int8', 'fp32'] : ['fp32', 'int8']) ts[s].push(await time(s));
      }
      const ips = (s) => batch / Math.min(...ts[s]);
      const paired = median(ts.fp32.map((t, i) => t / ts.int8[i]));
      const row = { id, size, batch, fp32: ips('fp32'), int8: ips('int8'), ratio: ips('int8') / ips('fp32'), paired, rounds: ts.fp32.length };
      rows.push(row);
      console.log(
        `${id} ${size}x${size} batch ${batch}: float32 ${fmt(row.fp32)} img/s, int8 ${fmt(row.int8)} img/s, int8/float32 ${fmt(row.ratio, 3)} (paired median ${fmt(paired, 3)}), ${row.rounds} rounds`,
      );
    }
    for (const s of Object.values(sessions)) await s.release();
  }
  console.log('\n| model | input | batch | float32 img/s | int8 img/s | int8/float32 | paired median | rounds |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(`| ${r.id} | ${r.size} | ${r.batch} | ${fmt(r.fp32)} | ${fmt(r.int8)} | **${fmt(r.ratio)}** | ${fmt(r.paired)} | ${r.rounds} |`);
}

async function accuracy(o) {
  const model = await cz.loadModel(o.checkpoint);
  const id = model.meta.id;
  const transform = cz.evalTransformFor(model);
  const size = transform.cropSize;
  const f32 = path.join(CACHE, `${id}.ckpt.fp32.onnx`);
  const i8 = path.join(CACHE, `${id}.ckpt.int8.onnx`);
  await cz.exportOnnx(model, f32, { batch: 'dynamic' });
  const t0 = performance.now();
  await cz.exportOnnx(model, i8, {
    batch: 'dynamic',
    int8: { calibration: cz.calibrationBatches(model, { data: 'fashion-mnist', images: o.calibrationImages, inputSize: size, channels: transform.channels }) },
  });
  const calibSeconds = (performance.now() - t0) / 1000;
  const sessions = { fp32: await ort.InferenceSession.create(f32, sessionOptions(o)), int8: await ort.InferenceSession.create(i8, sessionOptions(o)) };
  const data = await makeData({ data: 'fashion-mnist', batchSize: 250, inputSize: size, augment: 'none', pretrained: transform });
  const correct = { eager: 0, fp32: 0, int8: 0, ...(o.bf16 ? { bf16: 0 } : {}) };
  const bf16 = o.bf16 ? await cz.loadModel(o.checkpoint, { optimize: { dtype: 'bfloat16' } }) : undefined;
  let agree = 0;
  let agreeBf16 = 0;
  let n = 0;
  const argmax = (a, i, k) => {
    let best = 0;
    for (let j = 1; j < k; j++) if (a[i * k + j] > a[i * k + best]) best = j;
    return best;
  };
  model.eval();
  for await (const { images, labels } of data.test) {
    const y = labels.toArray();
    const feed = { input: new ort.Tensor('float32', images.data(), images.shape) };
    const out = {
      eager: cz.inferenceMode(() => model.forward(images)).data(),
      fp32: (await sessions.fp32.run(feed)).logits.data,
      int8: (await sessions.int8.run(feed)).logits.data,
      ...(bf16 ? { bf16: cz.inferenceMode(() => bf16.forward(images)).data() } : {}),
    };
    const k = out.fp32.length / y.length;
    for (let i = 0; i < y.length; i++) {
      const p = Object.fromEntries(Object.entries(out).map(([s, a]) => [s, argmax(a, i, k)]));
      for (const s of Object.keys(correct)) if (p[s] === y[i]) correct[s]++;
      if (p.int8 === p.fp32) agree++;
      if (bf16 && p.bf16 === p.eager) agreeBf16++;
    }
    n += y.length;
  }
  const pct = (c) => (100 * c) / n;
  console.log(
    `${o.checkpoint} (${id}, ${size}x${size}, ${transform.channels} channel(s)); int8 calibrated on the first ${o.calibrationImages} training images in ${calibSeconds.toFixed(1)} s`,
  );
  console.log(
    `test top-1 on ${n} images: convzoo eager ${fmt(pct(correct.eager))}%, onnxruntime float32 ${fmt(pct(correct.fp32))}%, onnxruntime int8 ${fmt(pct(correct.int8))}%`,
  );
  console.log(`int8 - float32: ${fmt(pct(correct.int8) - pct(correct.fp32))} points; int8 agrees with float32 on ${fmt(pct(agree))}% of the images`);
  if (bf16)
    console.log(
      `bfloat16 fast path ${fmt(pct(correct.bf16))}%: ${fmt(pct(correct.bf16) - pct(correct.eager))} points against float32 eager; agrees with it on ${fmt(pct(agreeBf16))}% of the images`,
    );
  for (const s of Object.values(sessions)) await s.release();
}

const o = parse(process.argv.slice(2));
mkdirSync(CACHE, { recursive: true });
if (o.mode === 'speed') await speed(o);
else await accuracy(o);
