// The training loop: data, model, optimizer and schedule from one options object; a checkpoint each
// epoch (last.ckpt, and best.ckpt on the best test accuracy), metrics.jsonl, curves, and an exact resume.
// Every option is validated before any work; the output folder is locked for the run (one run per
// folder). A resume takes the run's options from the checkpoint, validated the same way, but never
// where to write (the command line's --out, else the checkpoint's own folder) nor what to fetch: the
// model is built with random initialisation and gets the checkpoint's weights.
import { appendFileSync, existsSync, mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConvzooError } from '../errors.js';
import { manualSeed, setNumThreads } from '../tensor/creation.js';
import { buildModel, createModel } from '../models/builder.js';
import { modelMeta } from '../models/registry.js';
import type { ClassifierModel } from '../models/base.js';
import { pretrainedDataConfig } from '../vision/data_config.js';
import { makeData, classDifference, type DataOptions } from './datasets.js';
import { validateTrainOptions } from './options.js';
import { acquireRunLock } from './lock.js';
import { makeOptimizer, makeScheduler, type OptimizerName, type ScheduleName, type EpochScheduler } from './recipe.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { trainStep } from './step.js';
import { saveCheckpoint, loadCheckpoint, restoreRng, type Checkpoint, type CheckpointInfo } from './checkpoint.js';
import { plotCurves, plotConfusion } from './plots.js';
import type { Optimizer } from '../optim/optimizer.js';
import { AGC } from '../optim/agc.js';
import { ModelEma } from './ema.js';
import { barrier, getRank, getWorldSize } from '../distributed/process_group.js';
import { DistributedDataParallel, convertSyncBatchNorm } from '../distributed/ddp.js';

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
  /** Output folder (default ./convzoo-run; when resuming, the checkpoint's own folder). Locked for the run. */
  out?: string;
  /** A checkpoint (last.ckpt) to continue: its options, weights, optimizer, schedule and RNG; only out, epochs, threads, numWorkers and data may change. */
  resume?: string;
  /** Pretrained weights for a fresh run ('DEFAULT', a tag, a file, a URL); never used when resuming. */
  weights?: string;
  threads?: number;
  /** Loss weight of auxiliary classifiers (GoogLeNet: 0.3). */
  auxWeight?: number;
  /** Adaptive gradient clipping with this clip factor (NFNets: 0.01), of every parameter but the classifier's (optim.AGC). */
  agc?: number;
  /** 'bf16': autocast bfloat16 forward on channels-last weights and images (float32 master weights, losses and batch-norm statistics). */
  precision?: 'fp32' | 'bf16';
  /** Keep an exponential moving average of the weights with this decay (timm: 0.9999), evaluated each epoch and checkpointed as `ema.*`. */
  ema?: number;
  /**
   * Distributed training (inside a process group of more than one rank): batch-norm statistics over every
   * rank's batch (SyncBatchNorm), so that N processes compute what one does at the same global batch.
   * Default false, as PyTorch's DDP and timm: each rank normalises with its own batch's statistics, which
   * is much faster (bench/ddp.mjs) and, at per-rank batches of 32 or more, trains about as well.
   */
  syncBn?: boolean;
  /** Extra architecture options (e.g. dropRate). */
  modelOptions?: Record<string, unknown>;
}

export type TrainEvent =
  | { type: 'start'; model: string; params: number; trainSize: number; testSize: number; epochs: number; startEpoch: number; out: string }
  | { type: 'step'; epoch: number; step: number; steps: number; loss: number; accuracy: number; imagesPerSecond: number; etaSeconds: number; lr: number }
  | {
      type: 'epoch';
      epoch: number;
      trainLoss: number;
      trainAccuracy: number;
      testLoss: number;
      testAccuracy: number;
      testTop5: number;
      seconds: number;
      lr: number;
      best: boolean;
      /** With --ema: the averaged weights' test loss, top-1 and top-5. */
      emaTestLoss?: number;
      emaTestAccuracy?: number;
      emaTestTop5?: number;
    }
  | { type: 'eval'; done: number; total: number }
  | { type: 'done'; testAccuracy: number; bestAccuracy: number; seconds: number; out: string }
  /** Something worth telling that is not an error (a stale lock taken over). */
  | { type: 'note'; message: string };

/** One line of metrics.jsonl (and of a checkpoint's history): the names of the 'epoch' event. */
export interface EpochRow {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss: number;
  testAccuracy: number;
  testTop5: number;
  lr: number;
  seconds: number;
  emaTestLoss?: number;
  emaTestAccuracy?: number;
  emaTestTop5?: number;
}

export interface TrainResult {
  model: ClassifierModel;
  /** With --ema: the averaged model (evaluated each epoch; in the checkpoints as `ema.*`). */
  ema?: ClassifierModel;
  classes: string[];
  history: EpochRow[];
  final: EvalResult;
  bestAccuracy: number;
  seconds: number;
  out: string;
}

export const TRAIN_DEFAULTS = {
  epochs: 3,
  batchSize: 128,
  lr: 0.1,
  optimizer: 'sgd' as OptimizerName,
  momentum: 0.9,
  weightDecay: 5e-4,
  schedule: 'cosine' as ScheduleName,
  warmupEpochs: 0,
  labelSmoothing: 0,
  seed: 0,
  out: './convzoo-run',
};

/** What a resumed run may change: where it writes, how long it runs, the machine's resources, and where its data now lives. */
const RESUME_OVERRIDES = ['out', 'epochs', 'threads', 'numWorkers', 'data'] as const;

export async function train(options: TrainOptions, onEvent: (e: TrainEvent) => void = () => {}): Promise<TrainResult> {
  const started = performance.now();
  if (typeof options !== 'object' || options === null) throw new ConvzooError('train: expected an options object', 'E_ARG', 'train');
  // Undefined options take the defaults.
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as TrainOptions;
  validateTrainOptions(given as unknown as Record<string, unknown>);
  if (!given.model && !given.resume) throw new ConvzooError('train: give a model id (or resume: a checkpoint)', 'E_ARG', 'train');
  let opts = { ...TRAIN_DEFAULTS, ...given };
  let resumeFrom = null as Awaited<ReturnType<typeof loadCheckpoint>> | null;
  if (given.resume) {
    resumeFrom = await loadCheckpoint(given.resume);
    try {
      const stored = { ...resumeFrom.options } as Record<string, unknown>;
      delete stored.out;
      delete stored.resume;
      validateTrainOptions(stored, `train: the checkpoint ${given.resume} holds an invalid option`);
      if (given.model && given.model !== resumeFrom.modelId) {
        throw new ConvzooError(
          `train: --model ${given.model} differs from the checkpoint's model ${resumeFrom.modelId}; a resume continues the same model`,
          'E_ARG',
          'train',
        );
      }
      // The run continues with its own options; only RESUME_OVERRIDES may change. `weights` stays
      // as a record of how the run started, and is never loaded again.
      opts = {
        ...TRAIN_DEFAULTS,
        ...(stored as Partial<TrainOptions>),
        model: resumeFrom.modelId,
        resume: given.resume,
        out: path.dirname(path.resolve(given.resume)),
      };
      for (const k of RESUME_OVERRIDES) if (given[k] !== undefined) (opts as Record<string, unknown>)[k] = given[k];
    } catch (e) {
      resumeFrom.dispose();
      throw e;
    }
  }
  const out = path.resolve(opts.out);
  // Distributed: rank 0 owns the output folder (lock, checkpoints, metrics, plots); the others only read.
  if (getRank() !== 0) return await run(opts, out, resumeFrom, onEvent, started);
  // An exit in the middle of a checkpoint write (process.exit from a Ctrl-C handler) leaves this
  // process's temporary file: remove it on the way out (before the lock goes).
  const removeOwnTemporaries = (): void => removeTemporaries(out, process.pid);
  process.on('exit', removeOwnTemporaries);
  let lock;
  try {
    mkdirSync(out, { recursive: true });
    lock = acquireRunLock(out, (message) => onEvent({ type: 'note', message }));
  } catch (e) {
    process.off('exit', removeOwnTemporaries);
    resumeFrom?.dispose();
    if (e instanceof ConvzooError) throw e;
    throw new ConvzooError(`train: cannot create the output folder ${out}: ${(e as Error).message}`, 'E_IO', 'train');
  }
  try {
    removeTemporaries(out); // a killed run's, now that the folder is ours
    return await run(opts, out, resumeFrom, onEvent, started);
  } finally {
    process.off('exit', removeOwnTemporaries);
    lock.release();
  }
}

/** Checkpoint writes cut short by a kill leave `.last.ckpt.<pid>.<hex>.tmp` files: removes them (those of `pid` only, if given). */
function removeTemporaries(out: string, pid?: number): void {
  let files: string[];
  try {
    files = readdirSync(out);
  } catch {
    return;
  }
  for (const f of files) {
    const m = /^\.(?:last|best)\.ckpt\.(\d+)\.[0-9a-f]+\.tmp$/.exec(f);
    if (m && (pid === undefined || Number(m[1]) === pid)) {
      try {
        unlinkSync(path.join(out, f));
      } catch {
        /* gone */
      }
    }
  }
}

type ResolvedOptions = typeof TRAIN_DEFAULTS & TrainOptions;

async function run(
  opts: ResolvedOptions,
  out: string,
  resumeFrom: Checkpoint | null,
  allEvents: (e: TrainEvent) => void,
  started: number,
): Promise<TrainResult> {
  const worldSize = getWorldSize(); // 1 and 0 outside a process group
  const rank = getRank();
  const distributed = worldSize > 1;
  const writer = rank === 0;
  // Rank 0 reports; every rank computes the same numbers.
  const onEvent = writer ? allEvents : () => {};
  let data: Awaited<ReturnType<typeof makeData>>;
  let model: ClassifierModel;
  try {
    if (opts.threads) setNumThreads(opts.threads);
    manualSeed(opts.seed);
    // A folder is recorded by its absolute path, so that a resume from another directory finds it.
    if (opts.data && opts.data !== 'fashion-mnist') opts = { ...opts, data: path.resolve(opts.data) };
    // Images are normalised like the weights the run starts from (a resume: like its first epoch).
    data = await makeData({
      ...opts,
      pretrained: pretrainedDataConfig(modelMeta(opts.model), opts.weights),
      onWarning: (message) => onEvent({ type: 'note', message }),
      shard: distributed ? { rank, worldSize } : undefined,
    });
    const arch = { ...opts.modelOptions, numClasses: data.classes.length, inChans: data.channels };
    if (resumeFrom) {
      if (data.classes.join('\0') !== resumeFrom.classes.join('\0')) {
        await data.close();
        throw new ConvzooError(
          `train: the data ${opts.data ?? 'fashion-mnist'} does not have the checkpoint's classes: ${classDifference(resumeFrom.classes, data.classes)}`,
          'E_DATA',
          'train',
        );
      }
      // Random initialisation, then the checkpoint's weights (below). A run started from pretrained
      // weights was built with the options those weights need.
      const pretrained = resumeFrom.options.weights ? (modelMeta(opts.model).pretrainedOptions ?? {}) : {};
      model = buildModel(opts.model, { ...pretrained, ...arch });
    } else {
      // Distributed: rank 0 fetches the weights into the cache first, then the others read them there.
      if (distributed && rank !== 0) barrier();
      model = await createModel(opts.model, { ...arch, weights: opts.weights }).catch(async (e) => {
        await data.close();
        throw e;
      });
      if (distributed && rank === 0) barrier();
    }
  } catch (e) {
    resumeFrom?.dispose();
    throw e;
  }
  const stepsPerEpoch = data.train.length;
  if (distributed && opts.syncBn) convertSyncBatchNorm(model);
  // bf16 trains on channels-last weights (the optimizer's buffers follow them) and images.
  if (opts.precision === 'bf16') model.toMemoryFormat('channels_last');
  const precision = opts.precision === 'bf16' ? 'bfloat16' : 'float32';
  const optimizer = makeOptimizer(opts.optimizer, model, opts);
  if (opts.agc !== undefined) AGC.forModel(model, { clipFactor: opts.agc }).attach(optimizer);
  const scheduler = makeScheduler(opts.schedule, optimizer, { epochs: opts.epochs, stepsPerEpoch, warmupEpochs: opts.warmupEpochs });

  let startEpoch = 1;
  let best = 0;
  const history: TrainResult['history'] = [];
  let ema: ModelEma | null = null;
  try {
    if (resumeFrom) {
      model.loadStateDict(resumeFrom.model);
      if (opts.ema !== undefined) {
        ema = new ModelEma(model, { decay: opts.ema });
        // A checkpoint from before the EMA was asked for starts it at the current weights.
        if (Object.keys(resumeFrom.ema).length) ema.module.loadStateDict(resumeFrom.ema);
      }
      if (resumeFrom.optimizer) optimizer.loadStateDict(resumeFrom.optimizer as Parameters<Optimizer<any>['loadStateDict']>[0]);
      scheduler.loadState(resumeFrom.scheduler);
      restoreRng(resumeFrom);
      startEpoch = resumeFrom.epoch + 1;
      best = resumeFrom.best;
      history.push(...(resumeFrom.history as unknown as EpochRow[]));
      // The log restarts from what the checkpoint holds (a kill may have cut it anywhere).
      if (writer) writeFileSync(path.join(out, 'metrics.jsonl'), history.map((h) => JSON.stringify(h) + '\n').join(''));
    } else {
      if (opts.ema !== undefined) ema = new ModelEma(model, { decay: opts.ema });
      if (writer && existsSync(path.join(out, 'metrics.jsonl'))) writeFileSync(path.join(out, 'metrics.jsonl'), ''); // a fresh run starts a fresh log
    }
  } catch (e) {
    ema?.dispose();
    await data.close();
    throw e;
  } finally {
    resumeFrom?.dispose();
  }
  // After any resume: every rank starts from rank 0's weights and buffers.
  const ddp = distributed ? new DistributedDataParallel(model) : undefined;
  onEvent({
    type: 'start',
    model: opts.model,
    params: model.numParameters(),
    trainSize: data.trainSize,
    testSize: data.testSize,
    epochs: opts.epochs,
    startEpoch,
    out,
  });

  const auxWeight = opts.auxWeight ?? 0.3;
  let final: EvalResult | null = null;
  try {
    let globalStep = (startEpoch - 1) * stepsPerEpoch;
    for (let epoch = startEpoch; epoch <= opts.epochs; epoch++) {
      const epochStart = performance.now();
      data.train.setEpoch(epoch);
      model.train();
      let lossSum = 0,
        correct = 0,
        seen = 0,
        step = 0;
      for await (const { images, labels } of data.train) {
        step++;
        globalStep++;
        const r = trainStep(model, optimizer, { images, labels }, { labelSmoothing: opts.labelSmoothing, auxWeight, precision, ddp });
        const n = r.count; // the global batch's
        images.dispose();
        labels.dispose();
        if (!Number.isFinite(r.loss)) {
          throw new ConvzooError(
            `train: the loss became ${r.loss} at epoch ${epoch}, step ${step} (global step ${globalStep}); ` +
              `stopping. The last good checkpoint is ${path.join(out, 'last.ckpt')}${epoch > 1 ? '' : ' (none yet: this was the first epoch)'}. Try a lower --lr.`,
            'E_TORCH',
            'train',
          );
        }
        ema?.update();
        scheduler.afterStep();
        // Let the event loop turn once a step: with in-thread data loading every await above is a
        // microtask, and a signal (Ctrl-C) would wait for the end of the epoch.
        await new Promise<void>((resolve) => setImmediate(resolve));
        lossSum += r.loss * n;
        correct += r.correct;
        seen += n;
        const elapsed = (performance.now() - epochStart) / 1000;
        onEvent({
          type: 'step',
          epoch,
          step,
          steps: stepsPerEpoch,
          loss: lossSum / seen,
          accuracy: correct / seen,
          imagesPerSecond: seen / elapsed,
          etaSeconds: (elapsed / step) * (stepsPerEpoch - step),
          lr: optimizer.paramGroups[0].lr,
        });
      }
      if (seen === 0) {
        throw new ConvzooError(`train: epoch ${epoch} had no training image to learn from (none of the ${data.trainSize} could be decoded)`, 'E_DATA', 'train');
      }
      const result = measured(
        await evaluate(model, data.test, {
          numClasses: data.classes.length,
          onBatch: (done, total) => onEvent({ type: 'eval', done, total }),
          reduceOverRanks: distributed,
        }),
        data.testSize,
      );
      final = result;
      const emaResult = ema
        ? measured(await evaluate(ema.module, data.test, { numClasses: data.classes.length, reduceOverRanks: distributed }), data.testSize)
        : null;
      scheduler.afterEpoch(result.top1);
      const isBest = result.top1 > best;
      if (isBest) best = result.top1;
      const seconds = (performance.now() - epochStart) / 1000;
      const row: EpochRow = {
        epoch,
        trainLoss: lossSum / seen,
        trainAccuracy: correct / seen,
        testLoss: result.loss,
        testAccuracy: result.top1,
        testTop5: result.top5,
        lr: optimizer.paramGroups[0].lr,
        seconds,
        ...(emaResult ? { emaTestLoss: emaResult.loss, emaTestAccuracy: emaResult.top1, emaTestTop5: emaResult.top5 } : {}),
      };
      history.push(row);
      const info: CheckpointInfo = {
        epoch,
        modelId: opts.model,
        options: { ...opts, resume: undefined },
        classes: data.classes,
        best,
        history,
        scheduler: scheduler.state(),
        inChans: data.channels,
      };
      // The checkpoint first: metrics.jsonl never lists an epoch that no checkpoint holds.
      if (writer) {
        await saveCheckpoint(path.join(out, 'last.ckpt'), info, model, optimizer, ema?.module);
        if (isBest) await saveCheckpoint(path.join(out, 'best.ckpt'), info, model, undefined, ema?.module);
        appendFileSync(path.join(out, 'metrics.jsonl'), JSON.stringify(row) + '\n');
      }
      onEvent({
        type: 'epoch',
        epoch,
        trainLoss: row.trainLoss,
        trainAccuracy: row.trainAccuracy,
        testLoss: result.loss,
        testAccuracy: result.top1,
        testTop5: result.top5,
        seconds,
        lr: row.lr,
        best: isBest,
        ...(emaResult ? { emaTestLoss: emaResult.loss, emaTestAccuracy: emaResult.top1, emaTestTop5: emaResult.top5 } : {}),
      });
    }
    if (!final) final = measured(await evaluate(model, data.test, { numClasses: data.classes.length, reduceOverRanks: distributed }), data.testSize);
  } catch (e) {
    ema?.dispose();
    throw e;
  } finally {
    ddp?.dispose();
    await data.close();
  }
  if (writer) {
    await plotCurves(history, out);
    await plotConfusion(final.confusion, data.classes, out);
  }
  const seconds = (performance.now() - started) / 1000;
  onEvent({ type: 'done', testAccuracy: final.top1, bestAccuracy: best, seconds, out });
  return { model, ...(ema ? { ema: ema.module } : {}), classes: data.classes, history, final, bestAccuracy: best, seconds, out };
}

/** An evaluation that measured nothing (every test image failed to decode) is an error, not 0%. */
function measured(r: EvalResult, testSize: number): EvalResult {
  if (r.count === 0) throw new ConvzooError(`train: none of the ${testSize} test images could be decoded; no accuracy to report`, 'E_DATA', 'train');
  return r;
}

export type { EpochScheduler };
