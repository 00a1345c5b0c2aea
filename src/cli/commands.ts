// The CLI's commands as data: name, arguments, options, and a run function that calls the library.
import path from 'node:path';
import { InvalidArgumentError } from 'commander';
import sharp from 'sharp';
import * as cz from '../index.js';
import { ConvzooError } from '../errors.js';
import { train, TRAIN_DEFAULTS, type TrainOptions } from '../train/trainer.js';
import { trainReporter, type TrainReporter } from './report.js';
import { demo, DEMO_OPTIONS } from '../train/demo.js';
import { evaluateCommand } from '../train/eval_command.js';
import { applyOptimize } from '../models/builder.js';
import { OPTIMIZERS, SCHEDULES } from '../train/recipe.js';
import { PRECISIONS } from '../train/options.js';
import { AUGMENTS } from '../train/datasets.js';
import { readCheckpointMeta } from '../train/checkpoint.js';
import { buildWebSite } from '../serve/web_build.js';
import { checkServedName, type NamedModel } from '../serve/describe.js';
import { launch, withoutFlags } from './launch.js';

export interface OptionSpec {
  flags: string;
  description: string;
  default?: unknown;
  choices?: string[];
  /** Shown in --help as "(default: ...)" where the library, not the CLI, applies the default. */
  defaultText?: string;
  parse?: (value: string, previous: unknown) => unknown;
}
export interface CommandSpec {
  name: string;
  description: string;
  args?: { name: string; description: string }[];
  options?: OptionSpec[];
  /** Resolves to the exit code (a number), or to nothing for 0. */
  run: (args: unknown[], opts: Record<string, unknown>) => Promise<unknown>;
}

// Option parsers: a bad value is a one-line usage error (commander's InvalidArgumentError), never a trace.
const int =
  (_flag: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got '${v}'.`);
    if (n < min || n > max)
      throw new InvalidArgumentError(`expected an integer${max < Number.MAX_SAFE_INTEGER ? ` from ${min} to ${max}` : ` of at least ${min}`}, got ${v}.`);
    return n;
  };
const num =
  (_flag: string, lo = -Infinity, hi = Infinity, { loOpen = false, hiOpen = false } = {}) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got '${v}'.`);
    if ((loOpen ? n <= lo : n < lo) || (hiOpen ? n >= hi : n > hi)) {
      const parts = [lo > -Infinity ? `${loOpen ? '>' : '>='} ${lo}` : '', hi < Infinity ? `${hiOpen ? '<' : '<='} ${hi}` : ''].filter(Boolean);
      throw new InvalidArgumentError(`expected a number ${parts.join(' and ')}, got ${v}.`);
    }
    return n;
  };
/** An image size: one number (square) for the training commands; C,H,W or HxW for info. */
const shape = (v: string): number[] => {
  const dims = v.split(/[,x]/).map(int('--input-size', 1, 4096));
  if (dims.length < 1 || dims.length > 3) throw new InvalidArgumentError(`expected C,H,W, HxW or one size, got '${v}'.`);
  return dims;
};
const out = (s: string) => process.stdout.write(s + '\n');
/** A repeatable `--model [name=]id`: the model id and the name it is served under (default: the id). */
const servedModel = (v: string, previous: unknown): { name: string; id: string }[] => {
  const eq = v.indexOf('=');
  const name = eq < 0 ? v : v.slice(0, eq),
    id = eq < 0 ? v : v.slice(eq + 1);
  if (!name || !id) throw new InvalidArgumentError(`expected ID or NAME=ID, got '${v}'.`);
  return [...((previous as { name: string; id: string }[] | undefined) ?? []), { name, id }];
};

const D = TRAIN_DEFAULTS;
const trainOptions: OptionSpec[] = [
  { flags: '--data <name|dir>', description: "'fashion-mnist' (the embedded default) or an image folder (one sub-folder per class)" },
  { flags: '--epochs <n>', description: 'epochs', defaultText: String(D.epochs), parse: int('--epochs', 1) },
  { flags: '--batch-size <n>', description: 'images per step', defaultText: String(D.batchSize), parse: int('--batch-size', 1) },
  { flags: '--lr <x>', description: 'learning rate', defaultText: String(D.lr), parse: num('--lr', 0, Infinity, { loOpen: true }) },
  { flags: '--optimizer <name>', description: 'optimizer', defaultText: D.optimizer, choices: OPTIMIZERS },
  {
    flags: '--momentum <x>',
    description: 'momentum (SGD, RMSprop), in [0, 1)',
    defaultText: String(D.momentum),
    parse: num('--momentum', 0, 1, { hiOpen: true }),
  },
  { flags: '--weight-decay <x>', description: 'weight decay of conv and linear weights', defaultText: String(D.weightDecay), parse: num('--weight-decay', 0) },
  { flags: '--schedule <name>', description: 'learning-rate schedule', defaultText: D.schedule, choices: SCHEDULES },
  {
    flags: '--warmup-epochs <x>',
    description: 'linear warm-up epochs (fractions allowed)',
    defaultText: String(D.warmupEpochs),
    parse: num('--warmup-epochs', 0),
  },
  {
    flags: '--label-smoothing <x>',
    description: 'label smoothing, in [0, 1)',
    defaultText: String(D.labelSmoothing),
    parse: num('--label-smoothing', 0, 1, { hiOpen: true }),
  },
  {
    flags: '--agc <x>',
    description: 'adaptive gradient clipping with this clip factor (NFNets: 0.01), the classifier excluded',
    defaultText: 'off',
    parse: num('--agc', 0, Infinity, { loOpen: true }),
  },
  {
    flags: '--precision <p>',
    description: 'fp32, or bf16: autocast bfloat16 on channels-last tensors (float32 master weights, losses and batch-norm statistics)',
    defaultText: 'fp32',
    choices: [...PRECISIONS],
  },
  {
    flags: '--ema <decay>',
    description:
      'keep an exponential moving average of the weights (timm: 0.9999), evaluated each epoch and saved in the checkpoints (use it with predict/eval/export --ema)',
    defaultText: 'off',
    parse: num('--ema', 0, 1, { loOpen: true, hiOpen: true }),
  },
  { flags: '--augment <kind>', description: 'training augmentation (alexnet: PCA lighting; vgg: scale jittering)', choices: AUGMENTS },
  {
    flags: '--input-size <n>',
    description: 'resize images to n x n (e.g. for ImageNet models on Fashion-MNIST)',
    defaultText: '28 for Fashion-MNIST, 224 for folders',
    parse: int('--input-size', 8, 4096),
  },
  {
    flags: '--val-split <x>',
    description: 'image folders: fraction held out for testing, in (0, 1)',
    defaultText: '0.2',
    parse: num('--val-split', 0, 1, { loOpen: true, hiOpen: true }),
  },
  { flags: '--subset <n>', description: 'train on the first n images only (quick runs)', parse: int('--subset', 1) },
  { flags: '--workers <n>', description: 'data loader worker threads', defaultText: '1', parse: int('--workers', 0, 256) },
  { flags: '--threads <n>', description: 'libtorch threads', defaultText: 'one per core', parse: int('--threads', 1, 1024) },
  { flags: '--seed <n>', description: 'random seed', defaultText: String(D.seed), parse: int('--seed', 0) },
  { flags: '--out <dir>', description: "output folder (default ./convzoo-run; with --resume, the checkpoint's folder)" },
  { flags: '--resume <file>', description: 'continue the run saved in this checkpoint (last.ckpt)' },
  { flags: '--weights <w>', description: "start from pretrained weights: 'DEFAULT', a tag, a file or a URL (the head is reset when the class count differs)" },
  { flags: '--json', description: 'JSON lines instead of a progress bar (the default on a pipe)' },
];

/** convzoo serve's bound on the allocator's cache, MiB (training keeps the 4 GiB default). */
const SERVE_ALLOCATOR_CACHE_MB = 512;

/** train's options for more than one process (the torchrun environment is the other way in). */
const distributedOptions: OptionSpec[] = [
  {
    flags: '--nproc <n>',
    description: 'train with n processes on this machine (DistributedDataParallel over gloo; --batch-size is the global batch)',
    defaultText: '1',
    parse: int('--nproc', 1, 256),
  },
  {
    flags: '--max-restarts <n>',
    description: 'with --nproc: restart the whole job from its last checkpoint after a failure, up to n times',
    defaultText: '0',
    parse: int('--max-restarts', 0, 1000),
  },
  {
    flags: '--dist-timeout <seconds>',
    description: 'how long a rank waits for the others (rendezvous, each collective) before failing',
    defaultText: String(cz.distributed.DEFAULT_TIMEOUT_SECONDS),
    parse: num('--dist-timeout', 0, 86400, { loOpen: true }),
  },
  {
    flags: '--sync-bn',
    description: "distributed: batch-norm statistics over every rank's batch (SyncBatchNorm: N processes compute what 1 does at the same global batch; slower)",
  },
];

/** CLI options minus undefined values, so that library defaults apply. */
function defined(opts: Record<string, unknown>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) if (v !== undefined) o[k] = v;
  if (o.workers !== undefined) {
    o.numWorkers = o.workers;
    delete o.workers;
  }
  return o;
}

/** info's --input-size as the [C, H, W] summary takes: one number is a square, HxW keeps the model's channels. */
function infoInputShape(meta: cz.ModelMeta, size: number[] | undefined): number[] | undefined {
  if (!size) return undefined;
  const chans = meta.inputSize[0];
  const full = size.length === 3 ? size : [chans, size[0], size[1] ?? size[0]];
  if (full[0] !== chans) throw new ConvzooError(`--input-size: ${meta.id} takes ${chans} input channels, got ${full[0]}`, 'E_ARG');
  return full;
}

/**
 * The model an inference command works on: a checkpoint's, or an id with weights (a tag, file or URL),
 * or an id with random weights (said on stderr). predict defaults to resnet50 with its DEFAULT weights.
 */
async function inferenceModel(
  id: string | undefined,
  opts: Record<string, unknown>,
  command: string,
  defaults: { id?: string; pretrained?: boolean } = {},
): Promise<cz.ClassifierModel> {
  if (opts.checkpoint) {
    if (opts.weights) throw new ConvzooError('give --checkpoint or --weights, not both', 'E_ARG');
    if (opts.numClasses) throw new ConvzooError("--num-classes does not go with --checkpoint (the checkpoint's classes decide)", 'E_ARG');
    const m = await cz.loadModel(opts.checkpoint as string, opts.ema ? { ema: true } : {});
    if (id && cz.modelMeta(id).id !== m.meta!.id) throw new ConvzooError(`${opts.checkpoint as string} holds ${m.meta!.id}, not ${id}`, 'E_ARG');
    return m;
  }
  const modelId = id ?? defaults.id;
  if (!modelId) throw new ConvzooError(`convzoo ${command}: give a model id or --checkpoint`, 'E_ARG');
  const meta = cz.modelMeta(modelId);
  const weights = (opts.weights as string | undefined) ?? (defaults.pretrained && meta.weights.length ? 'DEFAULT' : undefined);
  if (!weights)
    process.stderr.write(
      `convzoo ${command}: ${meta.id} gets random weights (no --weights${defaults.pretrained ? ' and no pretrained ones' : ' or --checkpoint'} given)\n`,
    );
  const numClasses = opts.numClasses as number | undefined;
  const ema = opts.ema ? { ema: true } : {};
  return cz
    .createModel(modelId, { weights, ...ema, ...(numClasses ? { numClasses } : {}), onProgress: progressPrinter('downloading weights') })
    .catch((e: unknown) => {
      // Offline or behind a proxy: the weights can come from a file the user copied by other means.
      if (e instanceof ConvzooError && e.code === 'E_IO' && !opts.weights) {
        throw new ConvzooError(`${e.message}\n  (no network? download the file elsewhere and pass --weights FILE)`, e.code, e.op);
      }
      throw e;
    });
}

const emaOption: OptionSpec = {
  flags: '--ema',
  description: "a checkpoint's moving average of the weights (of a run trained with --ema) instead of its raw weights",
};

/** predict's, eval's and serve's choice of the inference fast path (model.optimizeForInference). */
const fastPathOptions: OptionSpec[] = [
  {
    flags: '--precision <p>',
    description: 'libtorch inference precision: fp32, or bf16 (the fast path in bfloat16)',
    default: 'fp32',
    choices: ['fp32', 'bf16'],
  },
  { flags: '--fast', description: 'the float32 fast path: batch norms folded into the convolutions, channels-last (implied by --precision bf16)' },
];

const FAST_PATH_NOT_ORT = "--precision bf16 and --fast are the libtorch backend's fast path (onnxruntime optimizes its graph itself)";

/** createModel's optimize for --precision / --fast, or undefined for the eager model. */
function fastPath(opts: Record<string, unknown>): true | cz.OptimizeForInferenceOptions | undefined {
  if (opts.precision === 'bf16') return { dtype: 'bfloat16' };
  return opts.fast ? true : undefined;
}

/** Commands with sub-commands ('web build' is `build` under `web`), and what each group is for. */
export const commandGroups: Record<string, string> = {
  web: 'the web page (convzoo serve shows it at /): build it as static files',
};

export const commands: CommandSpec[] = [
  {
    name: 'list',
    description: 'list the registered model ids (optionally filtered: a family or a glob like "resnet*")',
    args: [{ name: '[filter]', description: 'family name or glob' }],
    options: [{ flags: '--json', description: 'print JSON' }],
    async run([filter], opts) {
      const ids = cz.listModels(filter as string | undefined);
      if (opts.json) {
        out(
          JSON.stringify(
            ids.map((id) => {
              const m = cz.modelMeta(id);
              return { id, family: m.family, params: m.params, paper: m.paper.title, weights: m.weights.map((w) => w.tag) };
            }),
          ),
        );
        return;
      }
      const w = Math.max(...ids.map((i) => i.length));
      for (const id of ids) {
        const m = cz.modelMeta(id);
        out(
          `${id.padEnd(w)}  ${(m.params / 1e6).toFixed(2).padStart(7)}M params  ${m.weights.length ? 'weights: ' + m.weights.map((x) => x.tag).join(',') : ''}`,
        );
      }
    },
  },
  {
    name: 'info',
    description: "print a model's layers with output shapes, parameters and multiply-adds",
    args: [{ name: '<id>', description: 'model id' }],
    options: [
      { flags: '--json', description: 'print {id, params, macs, inputSize, mean, std, paper}' },
      { flags: '--input-size <size>', description: "input size: C,H,W, HxW or one number for a square (default: the model's)", parse: shape },
      { flags: '--num-classes <n>', description: 'classifier outputs', parse: int('--num-classes', 1, 1_000_000) },
    ],
    async run([id], opts) {
      // The deployable form: as the pretrained weights build it (GoogLeNet without its training-only heads).
      const pretrained = cz.modelMeta(id as string).pretrainedOptions ?? {};
      const model = cz.buildModel(id as string, { ...pretrained, ...(opts.numClasses ? { numClasses: opts.numClasses as number } : {}) });
      const meta = model.meta!;
      const s = cz.summary(model, infoInputShape(meta, opts.inputSize as number[] | undefined));
      if (opts.json) {
        out(
          JSON.stringify({ id: meta.id, params: s.totalParams, macs: s.totalMacs, inputSize: s.inputShape, mean: meta.mean, std: meta.std, paper: meta.paper }),
        );
        return;
      }
      out(`${meta.id}: ${meta.paper.title} (${meta.paper.year})`);
      out(s.toString());
    },
  },
  {
    name: 'predict',
    description: 'classify images (JPEG, PNG, WebP, ...) and print the top-k labels',
    args: [{ name: '<images...>', description: 'image files' }],
    options: [
      { flags: '-m, --model <id>', description: "model id (default: resnet50, or the checkpoint's model)" },
      {
        flags: '-w, --weights <w>',
        description: "'DEFAULT', a tag, a weights file, a URL or a convzoo checkpoint (default: DEFAULT when the model has weights)",
      },
      { flags: '-c, --checkpoint <file>', description: 'a convzoo training checkpoint (last.ckpt / best.ckpt): its model, classes and preprocessing' },
      emaOption,
      { flags: '-k, --topk <k>', description: 'labels per image', default: 5, parse: int('--topk', 1) },
      { flags: '--batch-size <n>', description: 'images per forward pass', default: 16, parse: int('--batch-size', 1, 65536) },
      {
        flags: '--backend <name>',
        description: 'what runs the model: libtorch, or onnxruntime (the model exported to ONNX, or --weights FILE.onnx as it is)',
        default: 'libtorch',
        choices: ['libtorch', 'onnxruntime'],
      },
      { flags: '--threads <n>', description: 'libtorch (and onnxruntime) threads (default: one per core)', parse: int('--threads', 1, 1024) },
      ...fastPathOptions,
      { flags: '--no-auto-orient', description: "ignore EXIF orientation, as torchvision's loader does" },
      { flags: '--json', description: 'print JSON' },
    ],
    async run([images], opts) {
      if (opts.threads) cz.setNumThreads(opts.threads as number);
      const threads = opts.threads as number | undefined;
      const onnxruntime = opts.backend === 'onnxruntime';
      const optimize = fastPath(opts);
      if (optimize && onnxruntime) throw new ConvzooError(FAST_PATH_NOT_ORT, 'E_ARG');
      let model: cz.ClassifierModel | cz.OnnxInferenceModel;
      if (onnxruntime && typeof opts.weights === 'string' && opts.weights.toLowerCase().endsWith('.onnx')) {
        // An exported file runs as it is; its metadata gives the id, classes and preprocessing.
        if (opts.checkpoint) throw new ConvzooError('give --checkpoint or --weights, not both', 'E_ARG');
        model = await cz.OnnxInferenceModel.fromFile(opts.weights, { threads, id: opts.model as string | undefined });
      } else {
        const m = await inferenceModel(opts.model as string | undefined, opts, 'predict', { id: 'resnet50', pretrained: true });
        if (optimize) applyOptimize(m, optimize);
        model = onnxruntime ? await toOnnxRuntime(m, threads) : m;
      }
      let results: cz.PredictResult[];
      try {
        results = await cz.predict(model, images as string[], {
          topk: opts.topk as number,
          batchSize: opts.batchSize as number,
          autoOrient: opts.autoOrient as boolean,
        });
      } finally {
        await model.dispose();
      }
      if (opts.json) out(JSON.stringify(results));
      else
        for (const r of results) {
          if ('error' in r) {
            process.stderr.write(`${r.source}: error: ${r.error}\n`);
            continue;
          }
          out(r.source);
          for (const p of r.predictions) out(`  ${(p.probability * 100).toFixed(2).padStart(6)}%  ${p.label}`);
        }
      return results.some((r) => 'error' in r) ? 3 : 0;
    },
  },
  {
    name: 'train',
    description: 'train a model (checkpoints, metrics.jsonl and plots go to --out)',
    options: [{ flags: '-m, --model <id>', description: 'model id' }, ...trainOptions, ...distributedOptions],
    async run(_args, opts) {
      if (!opts.model && !opts.resume) throw new ConvzooError('give --model <id> (or --resume FILE)', 'E_ARG');
      const { nproc, maxRestarts, distTimeout, ...rest } = defined(opts) as Record<string, number | undefined>;
      const o = rest as unknown as TrainOptions;
      const timeoutSeconds = distTimeout ?? cz.distributed.DEFAULT_TIMEOUT_SECONDS;
      const worldSize = Number(process.env.WORLD_SIZE ?? 1);
      if (maxRestarts && !(nproc && nproc > 1)) throw new ConvzooError('--max-restarts goes with --nproc N (N > 1)', 'E_ARG');
      if (nproc && nproc > 1 && !process.env.WORLD_SIZE) {
        cz.distributed.requireDistributed('--nproc');
        const argv = process.argv.slice(2);
        const args = withoutFlags(argv.slice(argv.indexOf('train') + 1), ['--nproc', '--max-restarts']);
        const runOut = path.resolve(o.out ?? (o.resume ? path.dirname(o.resume) : TRAIN_DEFAULTS.out));
        return await launch({
          nproc,
          args,
          maxRestarts: maxRestarts ?? 0,
          out: runOut,
          graceSeconds: timeoutSeconds,
          threads: o.threads,
          log: (line) => process.stderr.write(`${line}\n`),
        });
      }
      if (worldSize > 1) cz.distributed.initProcessGroup({ timeoutSeconds });
      const report = trainReporter({ json: opts.json as boolean | undefined });
      let runOut: string | undefined;
      let epochsDone = 0;
      const hint = (): string => {
        if (epochsDone > 0 && runOut) return `continue with: convzoo train --resume ${path.join(runOut, 'last.ckpt')}`;
        if (o.resume) {
          const elsewhere = o.out && path.resolve(o.out) !== path.dirname(path.resolve(o.resume)) ? ` --out ${o.out}` : '';
          return `no epoch finished since the resume; continue with: convzoo train --resume ${o.resume}${elsewhere}`;
        }
        return 'no checkpoint yet (the first epoch did not finish); start again to train';
      };
      const r = await interruptible(report, hint, () =>
        train({ ...o, out: o.out ?? (o.resume ? undefined : TRAIN_DEFAULTS.out) } as TrainOptions, (e) => {
          if (e.type === 'start') runOut = e.out;
          if (e.type === 'epoch') epochsDone++;
          report(e);
        }),
      );
      if (worldSize > 1) cz.distributed.destroyProcessGroup();
      out(
        JSON.stringify({
          model: o.model ?? r.model.meta?.id,
          testAccuracy: r.final.top1,
          bestAccuracy: r.bestAccuracy,
          epochs: r.history.length,
          seconds: r.seconds,
          out: r.out,
          ...(worldSize > 1 ? { processes: worldSize } : {}),
        }),
      );
    },
  },
  {
    name: 'eval',
    description: 'evaluate a model: top-1, top-5, per-class accuracy and the confusion matrix',
    options: [
      { flags: '-m, --model <id>', description: 'model id (taken from the checkpoint when omitted)' },
      { flags: '-w, --weights <w>', description: "'DEFAULT', a tag, a file or a URL" },
      { flags: '-c, --checkpoint <file>', description: 'a convzoo training checkpoint (last.ckpt / best.ckpt)' },
      emaOption,
      { flags: '--data <name|dir>', description: "'fashion-mnist' or an image folder", defaultText: "the checkpoint's data, else fashion-mnist" },
      { flags: '--batch-size <n>', description: 'images per forward pass', default: 256, parse: int('--batch-size', 1, 65536) },
      { flags: '--ten-crop <size>', description: "the papers' ten-crop evaluation with crops of this size", parse: int('--ten-crop', 8, 4096) },
      { flags: '--input-size <n>', description: 'resize images to n x n', parse: int('--input-size', 8, 4096) },
      { flags: '--out <dir>', description: 'write eval.json and the confusion matrix plot here' },
      ...fastPathOptions,
      { flags: '--json', description: 'print JSON' },
    ],
    async run(_args, opts) {
      const { precision: _precision, fast: _fast, ...rest } = defined(opts);
      const r = await evaluateCommand({ ...rest, optimize: fastPath(opts), onWarning: (m: string) => process.stderr.write(`warning: ${m}\n`) } as Parameters<
        typeof evaluateCommand
      >[0]);
      if (opts.json) {
        out(JSON.stringify(r));
        return;
      }
      out(`top-1 ${(r.top1 * 100).toFixed(2)}%  top-5 ${(r.top5 * 100).toFixed(2)}%  on ${r.count} images of ${r.data} (${r.seconds.toFixed(1)} s)`);
      r.classes.forEach((c, i) => out(`  ${c.padEnd(14)} ${(r.perClass[i] * 100).toFixed(2)}%`));
      out('confusion (rows: truth, columns: predicted):');
      for (const row of r.confusion) out('  ' + row.map((n) => String(n).padStart(5)).join(''));
    },
  },
  {
    name: 'export',
    description: 'write a model as ONNX (its eval-mode graph, batch norms folded, metadata inside) for onnxruntime and other runtimes',
    args: [{ name: '[id]', description: "model id (default: the checkpoint's)" }],
    options: [
      { flags: '-o, --out <file>', description: 'the .onnx file to write' },
      { flags: '-w, --weights <w>', description: "'DEFAULT', a tag, a weights file or a URL (default: random weights)" },
      { flags: '-c, --checkpoint <file>', description: 'a convzoo training checkpoint: its model, weights, classes and preprocessing' },
      emaOption,
      {
        flags: '--num-classes <n>',
        description: 'classifier outputs (a new head when the weights have another count)',
        parse: int('--num-classes', 1, 1_000_000),
      },
      { flags: '--input-size <size>', description: "H,W or one number for a square (default: the model's)", parse: shape },
      { flags: '--opset <n>', description: 'ONNX opset, 13 to 18', default: 17, parse: int('--opset', 13, 18) },
      { flags: '--dynamic-batch', description: 'a symbolic batch dimension (default: batch fixed by --batch)' },
      { flags: '--batch <n>', description: 'the fixed batch size', default: 1, parse: int('--batch', 1, 4096) },
      { flags: '--no-fold-bn', description: 'keep batch norms as separate nodes' },
      { flags: '--external-data', description: 'weights in <file>.data beside the graph (default: only past 2 GB)' },
      { flags: '--int8', description: 'static int8 quantization (needs --calibrate): int8 weights per channel, uint8 activations' },
      { flags: '--calibrate <data>', description: "calibration images for --int8: 'fashion-mnist' or an image folder (its training images)" },
      { flags: '--calibration-images <n>', description: 'images to calibrate on', default: 512, parse: int('--calibration-images', 1, 1_000_000) },
      {
        flags: '--int8-weight-bits <bits>',
        description: "int8 weights in 8 bits, or 7 where onnxruntime's kernels would saturate (x86 without VNNI); auto picks for this CPU",
        default: 'auto',
        choices: ['auto', '7', '8'],
      },
      { flags: '--json', description: 'print JSON' },
    ],
    async run([id], opts) {
      if (!opts.out) throw new ConvzooError('convzoo export: give the file to write with --out FILE.onnx', 'E_ARG');
      if (opts.int8 && !opts.calibrate)
        throw new ConvzooError('convzoo export: --int8 needs calibration images: --calibrate fashion-mnist or --calibrate DIR', 'E_ARG');
      if (opts.calibrate && !opts.int8) throw new ConvzooError('convzoo export: --calibrate goes with --int8', 'E_ARG');
      const model = await inferenceModel(id as string | undefined, opts, 'export');
      const size = opts.inputSize as number[] | undefined;
      const inputSize = size && size.length === 3 ? size : size?.length === 2 ? size : size?.[0];
      let int8: cz.Int8ExportOptions | undefined;
      if (opts.int8) {
        // Calibrated at the size and channels the graph is exported with.
        const transform = cz.evalTransformFor(model);
        const side = size ? size[size.length - 1] : transform.cropSize;
        const total = opts.calibrationImages as number;
        const bar =
          opts.json || !process.stderr.isTTY
            ? undefined
            : (n: number) => process.stderr.write(`\rcalibrating: ${n} / ${total} images${n >= total ? '\n' : ''}`);
        int8 = {
          calibration: cz.calibrationBatches(model, {
            data: opts.calibrate as string,
            images: total,
            inputSize: side,
            channels: transform.channels,
            onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
          }),
          onProgress: bar,
          weightBits: opts.int8WeightBits === 'auto' ? 'auto' : (Number(opts.int8WeightBits) as 7 | 8),
        };
      }
      const r = await cz.exportOnnx(model, opts.out as string, {
        inputSize,
        batch: opts.dynamicBatch ? 'dynamic' : (opts.batch as number),
        opset: opts.opset as number,
        foldBatchNorm: opts.foldBn as boolean,
        externalData: opts.externalData ? true : 'auto',
        int8,
      });
      if (opts.json) {
        out(JSON.stringify({ id: model.meta?.id, ...r }));
        return;
      }
      const mb = (r.bytes / 1e6).toFixed(1);
      out(
        `wrote ${r.path} (${mb} MB${r.externalDataPath ? `, weights in ${r.externalDataPath}` : ''}): ${model.meta?.id}, ${r.nodes} nodes, opset ${r.opset}, input [${r.inputShape.join(', ')}] -> [${r.outputShape.join(', ')}]`,
      );
    },
  },
  {
    name: 'serve',
    description: 'serve models over HTTP: KServe v2 (Open Inference Protocol) and /v1 classify routes, with dynamic batching',
    options: [
      {
        flags: '-m, --model <[name=]id>',
        description: "a model to serve (repeat for several); name=id serves it under another name (default: the checkpoint's model)",
        parse: (v: string, previous: unknown) => [...((previous as string[] | undefined) ?? []), v],
      },
      { flags: '-w, --weights <w>', description: "'DEFAULT', a tag, a weights file or a URL (one --model only; default: random weights)" },
      { flags: '-c, --checkpoint <file>', description: 'a convzoo training checkpoint: its model, classes and preprocessing (one model only)' },
      { flags: '--backend <name>', description: 'what runs the batches', default: 'libtorch', choices: ['libtorch', 'onnxruntime'] },
      { flags: '--host <host>', description: 'address to listen on', default: cz.SERVE_DEFAULTS.host },
      { flags: '--port <n>', description: 'port (0: any free one)', default: cz.SERVE_DEFAULTS.port, parse: int('--port', 0, 65535) },
      {
        flags: '--max-batch <n>',
        description: 'images per forward pass at most (1: no batching)',
        default: cz.SERVE_DEFAULTS.maxBatch,
        parse: int('--max-batch', 1, 4096),
      },
      {
        flags: '--max-delay-ms <ms>',
        description: 'how long a request waits for others to join its batch',
        default: cz.SERVE_DEFAULTS.maxDelayMs,
        parse: num('--max-delay-ms', 0, 60_000),
      },
      { flags: '--max-queue <n>', description: 'images waiting per model before 503', default: cz.SERVE_DEFAULTS.maxQueue, parse: int('--max-queue', 1) },
      {
        flags: '--request-timeout-ms <ms>',
        description: 'per-request deadline (504 past it)',
        default: cz.SERVE_DEFAULTS.requestTimeoutMs,
        parse: num('--request-timeout-ms', 1),
      },
      {
        flags: '--body-limit <bytes>',
        description: 'largest request body (413 past it)',
        default: cz.SERVE_DEFAULTS.bodyLimit,
        parse: int('--body-limit', 1),
      },
      {
        flags: '--max-pixels <n>',
        description: 'largest image in pixels, checked before decoding (413 past it)',
        default: cz.SERVE_DEFAULTS.maxPixels,
        parse: num('--max-pixels', 1),
      },
      { flags: '-k, --topk <k>', description: 'labels per image of /classify without ?topk', default: cz.SERVE_DEFAULTS.topk, parse: int('--topk', 1) },
      {
        flags: '--allocator-cache-mb <mb>',
        description: "freed memory libtorch's caching allocator keeps for reuse: batches of every size would otherwise fill it",
        defaultText: `${SERVE_ALLOCATOR_CACHE_MB}, or $CONVZOO_CPU_CACHE_MB`,
        parse: int('--allocator-cache-mb', 0, 1_048_576),
      },
      ...fastPathOptions,
      { flags: '--threads <n>', description: 'libtorch (or onnxruntime) threads per model', defaultText: 'one per core', parse: int('--threads', 1, 1024) },
      { flags: '--no-warmup', description: 'report ready without first running a batch of every size up to --max-batch' },
      { flags: '--json', description: "fastify's request logs as JSON lines on stdout (default: warnings only)" },
    ],
    async run(_args, opts) {
      const specs = await serveSpecs(opts);
      // Every image a server sees is new: sharp's operation cache would only hold memory.
      sharp.cache(false);
      // Dynamic batching makes batches of every size up to --max-batch, and the allocator would keep blocks
      // of each (RSS grew 50% over a 10,000-request soak with the training default of 4 GiB).
      const cacheMb = (opts.allocatorCacheMb as number | undefined) ?? (process.env.CONVZOO_CPU_CACHE_MB ? undefined : SERVE_ALLOCATOR_CACHE_MB);
      if (cacheMb !== undefined) cz.setAllocatorCacheLimit(cacheMb);
      const server = await cz.serve({
        models: specs,
        host: opts.host as string,
        port: opts.port as number,
        maxBatch: opts.maxBatch as number,
        maxDelayMs: opts.maxDelayMs as number,
        maxQueue: opts.maxQueue as number,
        requestTimeoutMs: opts.requestTimeoutMs as number,
        bodyLimit: opts.bodyLimit as number,
        maxPixels: opts.maxPixels as number,
        topk: opts.topk as number,
        threads: opts.threads as number | undefined,
        warmup: opts.warmup as boolean,
        logger: opts.json ? true : { level: 'warn' },
      });
      const names = specs.map((s) => s.name).join(', ');
      out(opts.json ? JSON.stringify({ url: server.url, models: specs.map((s) => s.name) }) : `convzoo serve: ${names} at ${server.url}`);
      // SIGTERM / Ctrl-C: stop accepting, finish what is in flight, free the models, exit 0. A second signal exits at once.
      await new Promise<void>((resolve, reject) => {
        const stop = (signal: NodeJS.Signals): void => {
          process.once(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));
          if (!opts.json) process.stderr.write(`convzoo serve: ${signal}: finishing the requests in flight\n`);
          server.close().then(resolve, reject);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    },
  },
  {
    name: 'web build',
    description: 'write the web page into DIR as static files, with each model as ONNX for in-browser classification (any static host serves it)',
    args: [{ name: '<dir>', description: 'the folder to write (created if needed)' }],
    options: [
      {
        flags: '-m, --model <[name=]id>',
        description: "a model to include (repeatable); name=id lists it under another name (default: the checkpoint's)",
        parse: servedModel,
      },
      { flags: '-w, --weights <w>', description: "'DEFAULT', a tag, a weights file or a URL, for every --model (default: random weights)" },
      { flags: '-c, --checkpoint <file>', description: 'a convzoo training checkpoint: its model, weights, classes and preprocessing' },
      { flags: '--json', description: 'print JSON' },
    ],
    async run([dir], opts) {
      const wanted = (opts.model as { name: string; id: string }[] | undefined) ?? [];
      if (wanted.length === 0 && !opts.checkpoint) throw new ConvzooError('give --model ID (repeatable) or --checkpoint FILE', 'E_ARG');
      if (opts.checkpoint && wanted.length > 1) throw new ConvzooError('--checkpoint holds one model: give at most one --model with it', 'E_ARG');
      for (const w of wanted) checkServedName(w.name);
      const models: NamedModel[] = [];
      try {
        for (const w of opts.checkpoint ? [wanted[0]] : wanted) {
          const model = await inferenceModel(w?.id, opts, 'web build');
          models.push({ name: w?.name ?? model.meta!.id, model });
        }
        const r = buildWebSite(dir as string, models);
        if (opts.json) out(JSON.stringify({ dir: r.dir, files: r.files, models: r.models.map((m) => ({ name: m.name, id: m.id })) }));
        else
          out(
            `wrote ${r.dir}: the page and ${r.models.map((m) => (m.name === m.id ? m.id : `${m.name} (${m.id})`)).join(', ')}; serve it with any static file server`,
          );
      } finally {
        for (const m of models) m.model.dispose();
      }
    },
  },
  {
    name: 'demo',
    description: 'the main job: train resnet20 on Fashion-MNIST for 3 epochs, evaluate, save checkpoint, plots and metrics.json',
    options: [
      { flags: '--out <dir>', description: 'output folder', default: DEMO_OPTIONS.out },
      { flags: '--epochs <n>', description: 'epochs', defaultText: String(DEMO_OPTIONS.epochs ?? D.epochs), parse: int('--epochs', 1) },
      { flags: '--subset <n>', description: 'train on the first n images only (quick check)', parse: int('--subset', 1) },
      { flags: '--threads <n>', description: 'libtorch threads', defaultText: 'one per core', parse: int('--threads', 1, 1024) },
      { flags: '--json', description: 'JSON lines instead of a progress bar' },
    ],
    async run(_args, opts) {
      const report = trainReporter({ json: opts.json as boolean | undefined });
      let epochsDone = 0;
      const ckpt = path.join(path.resolve(opts.out as string), 'last.ckpt');
      const hint = () => (epochsDone ? `continue with: convzoo train --resume ${ckpt}` : 'no checkpoint yet (the first epoch did not finish)');
      const r = await interruptible(report, hint, () =>
        demo(defined(opts) as Partial<TrainOptions>, (e) => {
          if (e.type === 'epoch') epochsDone++;
          report(e);
        }),
      );
      out(
        `\nresnet20 on Fashion-MNIST: test accuracy ${(r.testAccuracy * 100).toFixed(2)}% after ${r.epochs} epoch${r.epochs === 1 ? '' : 's'} in ${r.seconds.toFixed(0)} s`,
      );
      out('a few test images:');
      for (const s of r.samples)
        out(`  ${s.label.padEnd(12)} -> ${s.predicted.padEnd(12)} (${(s.probability * 100).toFixed(1)}%)${s.label === s.predicted ? '' : '  wrong'}`);
      out(`checkpoint, plots and metrics.json in ${path.resolve(opts.out as string)}`);
    },
  },
];

/**
 * Runs a training job so that Ctrl-C (or SIGTERM) stops the progress bar, gives the terminal back as it
 * was (cursor, line wrap), says how to continue, and exits 130 (143); the output folder's lock goes
 * with the process (an exit handler).
 */
async function interruptible<T>(report: TrainReporter, hint: () => string, job: () => Promise<T>): Promise<T> {
  const onSignal = (signal: NodeJS.Signals): void => {
    report.stop();
    process.stderr.write(`\ninterrupted; ${hint()}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await job();
  } finally {
    report.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** serve's --model / --weights / --checkpoint / --backend as the server's model list. */
async function serveSpecs(opts: Record<string, unknown>): Promise<cz.ServedModelSpec[]> {
  const given = (opts.model as string[] | undefined) ?? [];
  const backend = opts.backend as 'libtorch' | 'onnxruntime';
  const checkpoint = opts.checkpoint as string | undefined;
  const weights = opts.weights as string | undefined;
  if (checkpoint && weights) throw new ConvzooError('give --checkpoint or --weights, not both', 'E_ARG');
  const optimize = fastPath(opts);
  if (optimize && backend === 'onnxruntime') throw new ConvzooError(FAST_PATH_NOT_ORT, 'E_ARG');
  if (given.length === 0) {
    if (!checkpoint) throw new ConvzooError('convzoo serve: give --model ID (repeatable) or --checkpoint FILE', 'E_ARG');
    // Served under its model's id, read from the header (the weights load later, in the server).
    const { modelId } = await readCheckpointMeta(checkpoint);
    return [{ name: cz.modelMeta(modelId).id, checkpoint, backend, optimize }];
  }
  if ((checkpoint || weights) && given.length > 1) throw new ConvzooError('--weights and --checkpoint go with one --model only', 'E_ARG');
  return given.map((m) => {
    const eq = m.indexOf('=');
    const name = eq >= 0 ? m.slice(0, eq) : m;
    const id = eq >= 0 ? m.slice(eq + 1) : m;
    if (!name || !id) throw new ConvzooError(`--model: expected ID or NAME=ID, got '${m}'`, 'E_ARG');
    const meta = cz.modelMeta(id); // an unknown id fails here, before anything loads
    if (!checkpoint && !weights) process.stderr.write(`convzoo serve: ${meta.id} gets random weights (no --weights or --checkpoint given)\n`);
    return { name, id, backend, optimize, ...(checkpoint ? { checkpoint } : {}), ...(weights ? { weights } : {}) };
  });
}

/** The libtorch model as an onnxruntime one (createModel's backend path, for a model already built); frees the libtorch one. */
async function toOnnxRuntime(model: cz.ClassifierModel, threads: number | undefined): Promise<cz.OnnxInferenceModel> {
  try {
    return await cz.OnnxInferenceModel.fromModel(model, { threads });
  } finally {
    model.dispose();
  }
}

/** A one-line download progress display on a terminal (nothing on a pipe). */
export function progressPrinter(label: string): ((received: number, total: number | null) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (received, total) => {
    const now = Date.now();
    if (now - last < 100 && received !== total) return;
    last = now;
    const mb = (n: number) => (n / 1048576).toFixed(1);
    process.stderr.write(`\r${label}: ${mb(received)}${total ? ` / ${mb(total)} MB (${Math.round((received / total) * 100)}%)` : ' MB'}`);
    if (received === total) process.stderr.write('\n');
  };
}
