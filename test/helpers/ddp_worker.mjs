// One rank of a data-parallel run for test/distributed.test.ts (or the single process it is compared
// with, when WORLD_SIZE is unset): resnet20 on the first steps of Fashion-MNIST, each rank loading its
// shard of every global batch, SyncBatchNorm and DistributedDataParallel. Prints the per-step global
// losses and a checksum of the final weights as JSON (rank 0 only).
//   node ddp_worker.mjs '{"steps":20,"batchSize":32,"dtype":"float64","seed":0}'
import * as cz from '../../dist/index.js';
import { makeData } from '../../dist/train/datasets.js';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const worldSize = Number(process.env.WORLD_SIZE ?? 1);
if (worldSize > 1) cz.distributed.initProcessGroup({ timeoutSeconds: 60 });
const rank = cz.distributed.getRank();
cz.setNumThreads(1);
cz.manualSeed(cfg.seed ?? 0);
const model = cz.buildModel('resnet20', { numClasses: 10, inChans: 1 });
if (cfg.dtype === 'float64') model.to('float64');
model.train();
let ddp;
if (worldSize > 1) {
  cz.distributed.convertSyncBatchNorm(model);
  ddp = new cz.distributed.DistributedDataParallel(model, { bucketCapMB: cfg.bucketCapMB ?? 25 });
}
const data = await makeData({
  data: 'fashion-mnist',
  batchSize: cfg.batchSize,
  subset: cfg.steps * cfg.batchSize,
  seed: cfg.seed ?? 0,
  augment: cfg.augment ?? 'none',
  numWorkers: 0,
  shard: worldSize > 1 ? { rank, worldSize } : undefined,
});
const opt = new cz.optim.SGD(model.parameters(), { lr: cfg.lr ?? 0.1, momentum: 0.9, weightDecay: 5e-4 });
const losses = [];
const counts = [];
data.train.setEpoch(1);
for await (const { images, labels } of data.train) {
  const x = cfg.dtype === 'float64' ? images.to('float64') : images;
  const r = cz.trainStep(model, opt, { images: x, labels }, { ddp });
  losses.push(r.loss);
  counts.push(r.count);
  images.dispose();
  labels.dispose();
}
// Evaluation reads float32 images: the float64 runs check training only.
const test = cfg.dtype === 'float64' ? { count: 0, top1: 0 } : await cz.evaluate(model, data.test, { numClasses: 10, reduceOverRanks: worldSize > 1 });
const checksum = model.parameters().reduce((s, p) => s + p.abs().sum().item(), 0);
const bnMean = [...model.namedBuffers()]
  .find(([k]) => k === 'bn1.running_mean')[1]
  .abs()
  .sum()
  .item();
await data.close();
ddp?.dispose();
if (rank === 0) console.log(JSON.stringify({ losses, counts, checksum, bnMean, testCount: test.count, testAccuracy: test.top1 }));
if (worldSize > 1) cz.distributed.destroyProcessGroup();
