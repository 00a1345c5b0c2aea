// The training loop: data, model, optimizer and schedule from one options object; a checkpoint each
// epoch (last.ckpt, and best.ckpt on the best test accuracy), metrics.jsonl, curves, and an exact resume.
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConvzooError } from '../errors.js';
import { manualSeed, setNumThreads } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import * as F from '../nn/functional.js';
import { createModel } from '../models/builder.js';
import type { ClassifierModel } from '../models/base.js';
import { makeData, type DataOptions } from './datasets.js';
import { makeOptimizer, makeScheduler, type OptimizerName, type ScheduleName, type EpochScheduler } from './recipe.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { saveCheckpoint, loadCheckpoint, restoreRng, type CheckpointInfo } from './checkpoint.js';
import { plotCurves, plotConfusion, type EpochMetrics } from './plots.js';
import type { Optimizer } from '../optim/optimizer.js';

export interface TrainOptions extends DataOptions {
  model: string;
  epochs?: number;
  lr?: number;
  optimizer?: OptimizerName;
  momentum?: number;
  weightDecay?: number;
  schedule?: ScheduleName;
  warmupEpochs?: number;
  labelSmoothing?: number;
  seed?: number;
  out?: string;
  resume?: string;
  weights?: string;
  threads?: number;
  /** Loss weight of auxiliary classifiers (GoogLeNet: 0.3). */
  auxWeight?: number;
  /** Extra architecture options (e.g. dropRate). */
  modelOptions?: Record<string, unknown>;
}

export type TrainEvent =
  | { type: 'start'; model: string; params: number; trainSize: number; testSize: number; epochs: number; startEpoch: number; out: string }
  | { type: 'step'; epoch: number; step: number; steps: number; loss: number; accuracy: number; imagesPerSecond: number; etaSeconds: number; lr: number }
  | { type: 'epoch'; epoch: number; trainLoss: number; trainAccuracy: number; testLoss: number; testAccuracy: number; testTop5: number; seconds: number; lr: number; best: boolean }
  | { type: 'eval'; done: number; total: number }
  | { type: 'done'; testAccuracy: number; bestAccuracy: number; seconds: number; out: string };

export interface TrainResult {
  model: ClassifierModel;
  classes: string[];
  history: (EpochMetrics & { testTop5: number; lr: number; seconds: number })[];
  final: EvalResult;
  bestAccuracy: number;
  seconds: number;
  out: string;
}

/** Models with auxiliary classifiers expose their logits through this call (GoogLeNet). */
interface AuxModel { forwardWithAux(x: unknown): { logits: import('../tensor/tensor.js').Tensor; aux: import('../tensor/tensor.js').Tensor[] } }
const hasAux = (m: unknown): m is AuxModel => typeof (m as AuxModel).forwardWithAux === 'function';

export const TRAIN_DEFAULTS = {
  epochs: 3, batchSize: 128, lr: 0.1, optimizer: 'sgd' as OptimizerName, momentum: 0.9, weightDecay: 5e-4,
  schedule: 'cosine' as ScheduleName, warmupEpochs: 0, labelSmoothing: 0, seed: 0, out: './convzoo-run',
};

export async function train(options: TrainOptions, onEvent: (e: TrainEvent) => void = () => {}): Promise<TrainResult> {
  const started = performance.now();
  let opts = { ...TRAIN_DEFAULTS, ...options };
  let resumeFrom = null as Awaited<ReturnType<typeof loadCheckpoint>> | null;
  if (opts.resume) {
    resumeFrom = await loadCheckpoint(opts.resume);
    // The run continues with its own options; only where it writes and how long it runs may change.
    opts = { ...(resumeFrom.options as typeof opts), resume: opts.resume, out: options.out ?? (resumeFrom.options.out as string), epochs: options.epochs ?? (resumeFrom.options.epochs as number) };
  }
  if (opts.threads) setNumThreads(opts.threads);
  manualSeed(opts.seed);
  const out = path.resolve(opts.out);
  mkdirSync(out, { recursive: true });

  const data = await makeData(opts);
  const model = await createModel(opts.model, {
    ...opts.modelOptions, numClasses: data.classes.length, inChans: data.channels, weights: opts.weights,
  });
  const stepsPerEpoch = data.train.length;
  const optimizer = makeOptimizer(opts.optimizer, model, opts);
  const scheduler = makeScheduler(opts.schedule, optimizer, { epochs: opts.epochs, stepsPerEpoch, warmupEpochs: opts.warmupEpochs });

  let startEpoch = 1;
  let best = 0;
  const history: TrainResult['history'] = [];
  if (resumeFrom) {
    model.loadStateDict(resumeFrom.model);
    if (resumeFrom.optimizer) optimizer.loadStateDict(resumeFrom.optimizer as Parameters<Optimizer<any>['loadStateDict']>[0]);
    scheduler.loadState(resumeFrom.scheduler);
    restoreRng(resumeFrom);
    startEpoch = resumeFrom.epoch + 1;
    best = resumeFrom.best;
    history.push(...(resumeFrom.history as TrainResult['history']));
    resumeFrom.dispose();
    // The log restarts from what the checkpoint holds (a kill may have cut it anywhere).
    writeFileSync(path.join(out, 'metrics.jsonl'), history.map((h) => JSON.stringify(h) + '\n').join(''));
  } else if (existsSync(path.join(out, 'metrics.jsonl'))) {
    writeFileSync(path.join(out, 'metrics.jsonl'), ''); // a fresh run starts a fresh log
  }
  onEvent({ type: 'start', model: opts.model, params: model.numParameters(), trainSize: data.trainSize, testSize: data.testSize, epochs: opts.epochs, startEpoch, out });

  const auxWeight = opts.auxWeight ?? 0.3;
  let final: EvalResult | null = null;
  try {
    let globalStep = (startEpoch - 1) * stepsPerEpoch;
    for (let epoch = startEpoch; epoch <= opts.epochs; epoch++) {
      const epochStart = performance.now();
      data.train.setEpoch(epoch);
      model.train();
      let lossSum = 0, correct = 0, seen = 0, step = 0;
      for await (const { images, labels } of data.train) {
        step++; globalStep++;
        const n = labels.shape[0];
        const r = tidy(() => {
          let logits, loss;
          if (hasAux(model)) {
            const o = model.forwardWithAux(images);
            logits = o.logits;
            loss = F.crossEntropy(logits, labels, { labelSmoothing: opts.labelSmoothing });
            for (const a of o.aux) loss = loss.add(F.crossEntropy(a, labels, { labelSmoothing: opts.labelSmoothing }).mul(auxWeight));
          } else {
            logits = model.forward(images);
            loss = F.crossEntropy(logits, labels, { labelSmoothing: opts.labelSmoothing });
          }
          const value = loss.item();
          if (!Number.isFinite(value)) return { value, correct: 0 };
          optimizer.zeroGrad();
          loss.backward();
          optimizer.step();
          return { value, correct: logits.argmax(1).eq(labels).sum().item() };
        });
        images.dispose(); labels.dispose();
        if (!Number.isFinite(r.value)) {
          throw new ConvzooError(`train: the loss became ${r.value} at epoch ${epoch}, step ${step} (global step ${globalStep}); ` +
            `stopping. The last good checkpoint is ${path.join(out, 'last.ckpt')}${epoch > 1 ? '' : ' (none yet: this was the first epoch)'}. Try a lower --lr.`, 'E_TORCH', 'train');
        }
        scheduler.afterStep();
        lossSum += r.value * n; correct += r.correct; seen += n;
        const elapsed = (performance.now() - epochStart) / 1000;
        onEvent({ type: 'step', epoch, step, steps: stepsPerEpoch, loss: lossSum / seen, accuracy: correct / seen, imagesPerSecond: seen / elapsed,
          etaSeconds: (elapsed / step) * (stepsPerEpoch - step), lr: optimizer.paramGroups[0].lr });
      }
      const result = await evaluate(model, data.test, { numClasses: data.classes.length, onBatch: (done, total) => onEvent({ type: 'eval', done, total }) });
      final = result;
      scheduler.afterEpoch(result.top1);
      const isBest = result.top1 > best;
      if (isBest) best = result.top1;
      const seconds = (performance.now() - epochStart) / 1000;
      const row = { epoch, trainLoss: lossSum / seen, trainAccuracy: correct / seen, valLoss: result.loss, valAccuracy: result.top1, testTop5: result.top5, lr: optimizer.paramGroups[0].lr, seconds };
      history.push(row);
      const info: CheckpointInfo = { epoch, modelId: opts.model, options: { ...opts, resume: undefined }, classes: data.classes, best, history, scheduler: scheduler.state() };
      // The checkpoint first: metrics.jsonl never lists an epoch that no checkpoint holds.
      await saveCheckpoint(path.join(out, 'last.ckpt'), info, model, optimizer);
      if (isBest) await saveCheckpoint(path.join(out, 'best.ckpt'), info, model);
      appendFileSync(path.join(out, 'metrics.jsonl'), JSON.stringify(row) + '\n');
      onEvent({ type: 'epoch', epoch, trainLoss: row.trainLoss, trainAccuracy: row.trainAccuracy, testLoss: result.loss, testAccuracy: result.top1, testTop5: result.top5, seconds, lr: row.lr, best: isBest });
    }
    if (!final) final = await evaluate(model, data.test, { numClasses: data.classes.length });
  } finally {
    await data.close();
  }
  await plotCurves(history, out);
  await plotConfusion(final.confusion, data.classes, out);
  const seconds = (performance.now() - started) / 1000;
  onEvent({ type: 'done', testAccuracy: final.top1, bestAccuracy: best, seconds, out });
  return { model, classes: data.classes, history, final, bestAccuracy: best, seconds, out };
}

export type { EpochScheduler };
