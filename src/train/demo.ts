// The main job: resnet20 (ResNet paper, section 4.2) trained on Fashion-MNIST for 3 epochs, evaluated on
// the 10,000 test images, with checkpoint, plots, metrics.json and a few test predictions printed.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { train, type TrainEvent, type TrainOptions } from './trainer.js';
import { inferenceMode, fromBytes } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { fashionMnistSamples } from './datasets.js';

export const DEMO_OPTIONS: TrainOptions = {
  model: 'resnet20',
  data: 'fashion-mnist',
  epochs: 3,
  batchSize: 128,
  lr: 0.1,
  optimizer: 'sgd',
  momentum: 0.9,
  weightDecay: 5e-4,
  schedule: 'cosine',
  warmupEpochs: 0.2,
  labelSmoothing: 0,
  seed: 0,
  out: './convzoo-demo',
  augment: 'crop-flip',
};

export interface DemoResult {
  model: string;
  epochs: number;
  testAccuracy: number;
  seconds: number;
  samples: { label: string; predicted: string; probability: number }[];
}

export async function demo(overrides: Partial<TrainOptions> = {}, onEvent?: (e: TrainEvent) => void): Promise<DemoResult> {
  const opts = { ...DEMO_OPTIONS, ...overrides };
  const r = await train(opts, onEvent);
  const metrics = { model: opts.model, epochs: opts.epochs!, testAccuracy: r.final.top1, seconds: r.seconds };
  writeFileSync(path.join(r.out, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  // A few test images through the trained network.
  const { images, labels, shape } = await fashionMnistSamples(opts, 8);
  r.model.eval();
  const { pred, prob } = inferenceMode(() =>
    tidy(() => {
      const p = r.model
        .forward(fromBytes(images, shape, 'float32'))
        .softmax(1)
        .max(1);
      return { pred: p.indices.data() as BigInt64Array, prob: p.values.data() as Float32Array };
    }),
  );
  const samples = labels.map((y, i) => ({ label: r.classes[y], predicted: r.classes[Number(pred[i])], probability: prob[i] }));
  return { ...metrics, samples };
}
