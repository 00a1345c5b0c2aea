// The data loader's throughput beside what training consumes: Fashion-MNIST through the DataLoader
// (batch 128, random crop with padding 4 + horizontal flip + normalize, 2 workers) in images/s, a
// resnet20 SGD training step on the same batch size in images/s, their ratio (target: loader >= 5x),
// and training fed by the loader (does the loader keep up while it shares the CPU?).
//
//   npx tsc -p tsconfig.json && node bench/loader.mjs [--workers 2] [--batches 200] [--steps 20]
import os from 'node:os';
import * as cz from '../dist/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const numWorkers = arg('workers', 2);
const maxBatches = arg('batches', 200);
const steps = arg('steps', 20);
const batchSize = 128;
const { data } = cz;

const machine = `${os.cpus()[0].model.trim()} x${os.cpus().length}`;
const tag = () => `[${machine} | libtorch ${cz.torchVersion} | float32 | batch ${batchSize} | torch threads ${cz.getNumThreads()} | workers ${numWorkers}]`;
const now = () => performance.now() / 1000;

const ds = new data.FashionMNIST({ train: true });
const transform = data.fashionMnistTrain();

// ---- 1. The loader alone.
const loader = new data.DataLoader(ds, { batchSize, shuffle: true, seed: 0, transform, numWorkers, dropLast: true });
{
  // Warm-up pass: starts the workers (and JIT-compiles the transforms).
  let k = 0;
  for await (const b of loader) {
    b.dispose();
    if (++k === 5) break;
  }
}
let images = 0;
let t0 = now();
{
  let k = 0;
  for await (const b of loader) {
    images += b.images.shape[0];
    b.dispose();
    if (++k === maxBatches) break;
  }
}
const loaderRate = images / (now() - t0);
console.log(
  `loader alone        ${loaderRate.toFixed(0).padStart(8)} images/s  (${images} images, FashionMNIST train, RandomCrop(28, pad 4) + flip + Normalize) ${tag()}`,
);

// The same on the main thread (numWorkers 0), for reference.
{
  const main = new data.DataLoader(ds, { batchSize, shuffle: true, seed: 0, transform, dropLast: true });
  let n = 0;
  let k = 0;
  const t = now();
  for await (const b of main) {
    n += b.images.shape[0];
    b.dispose();
    if (++k === Math.min(maxBatches, 100)) break;
  }
  console.log(`loader main thread  ${(n / (now() - t)).toFixed(0).padStart(8)} images/s  (numWorkers 0) ${tag().replace(/workers \d+/, 'workers 0')}`);
}

// ---- 2. A resnet20 training step on a fixed batch.
const model = cz.buildModel('resnet20', { inChans: 1, numClasses: 10 });
model.train();
const opt = new cz.optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
const step = (x, y) =>
  cz.tidy(() => {
    opt.zeroGrad();
    const loss = cz.F.crossEntropy(model.forward(x), y);
    loss.backward();
    opt.step();
    return loss.item();
  });
const x = cz.randn([batchSize, 1, 28, 28]);
const y = cz.randint(0, 10, [batchSize]);
for (let i = 0; i < 3; i++) step(x, y);
t0 = now();
for (let i = 0; i < steps; i++) step(x, y);
const trainRate = (steps * batchSize) / (now() - t0);
x.dispose();
y.dispose();
console.log(`resnet20 train step ${trainRate.toFixed(0).padStart(8)} images/s  (${steps} SGD steps on a fixed batch) ${tag()}`);

// ---- 3. Training fed by the loader (workers prepare the next batches while a step runs).
t0 = now();
let fed = 0;
{
  let k = 0;
  for await (const b of loader) {
    step(b.images, b.labels);
    fed += b.images.shape[0];
    b.dispose();
    if (++k === steps) break;
  }
}
const fedRate = fed / (now() - t0);
console.log(
  `train from loader   ${fedRate.toFixed(0).padStart(8)} images/s  (${steps} steps; ${((100 * fedRate) / trainRate).toFixed(0)}% of the fixed-batch rate) ${tag()}`,
);
await loader.close();

const ratio = loaderRate / trainRate;
console.log(`ratio loader / training: ${ratio.toFixed(1)}x (target >= 5x: ${ratio >= 5 ? 'met' : 'NOT met'})`);
