// The CLI's commands as data: name, arguments, options, and a run function that calls the library.
import * as cz from '../index.js';
import { ConvzooError } from '../errors.js';

export interface OptionSpec {
  flags: string; description: string; default?: unknown; choices?: string[];
  parse?: (value: string, previous: unknown) => unknown;
}
export interface CommandSpec {
  name: string;
  description: string;
  args?: { name: string; description: string }[];
  options?: OptionSpec[];
  run: (args: unknown[], opts: Record<string, unknown>) => Promise<number | void>;
}

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ConvzooError(`${name}: expected an integer, got '${v}'`, 'E_ARG');
  return n;
};
const num = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ConvzooError(`${name}: expected a number, got '${v}'`, 'E_ARG');
  return n;
};
const shape = (v: string): number[] => v.split(/[,x]/).map(int('--input-size'));
const out = (s: string) => process.stdout.write(s + '\n');

export const commands: CommandSpec[] = [
  {
    name: 'list',
    description: 'list the registered model ids (optionally filtered: a family or a glob like "resnet*")',
    args: [{ name: '[filter]', description: 'family name or glob' }],
    options: [{ flags: '--json', description: 'print JSON' }],
    async run([filter], opts) {
      const ids = cz.listModels(filter as string | undefined);
      if (opts.json) { out(JSON.stringify(ids.map((id) => { const m = cz.modelMeta(id); return { id, family: m.family, params: m.params, paper: m.paper.title, weights: m.weights.map((w) => w.tag) }; }))); return; }
      const w = Math.max(...ids.map((i) => i.length));
      for (const id of ids) {
        const m = cz.modelMeta(id);
        out(`${id.padEnd(w)}  ${(m.params / 1e6).toFixed(2).padStart(7)}M params  ${m.weights.length ? 'weights: ' + m.weights.map((x) => x.tag).join(',') : ''}`);
      }
    },
  },
  {
    name: 'info',
    description: "print a model's layers with output shapes, parameters and multiply-adds",
    args: [{ name: '<id>', description: 'model id' }],
    options: [
      { flags: '--json', description: 'print {id, params, macs, inputSize, mean, std, paper}' },
      { flags: '--input-size <C,H,W>', description: 'input size (default: the model\'s)', parse: shape },
      { flags: '--num-classes <n>', description: 'classifier outputs', parse: int('--num-classes') },
    ],
    async run([id], opts) {
      const model = cz.buildModel(id as string, opts.numClasses ? { numClasses: opts.numClasses as number } : {});
      const meta = model.meta!;
      const s = cz.summary(model, opts.inputSize as number[] | undefined);
      if (opts.json) {
        out(JSON.stringify({ id, params: s.totalParams, macs: s.totalMacs, inputSize: s.inputShape, mean: meta.mean, std: meta.std, paper: meta.paper }));
        return;
      }
      out(`${id}: ${meta.paper.title} (${meta.paper.year})`);
      out(s.toString());
    },
  },
  {
    name: 'predict',
    description: 'classify images (JPEG, PNG, WebP) and print the top-k labels',
    args: [{ name: '<images...>', description: 'image files' }],
    options: [
      { flags: '-m, --model <id>', description: 'model id', default: 'resnet50' },
      { flags: '-w, --weights <w>', description: "'DEFAULT', a tag, a file or a URL (default: DEFAULT when the model has weights)" },
      { flags: '-k, --topk <k>', description: 'labels per image', default: 5, parse: int('--topk') },
      { flags: '--batch-size <n>', description: 'images per forward pass', default: 16, parse: int('--batch-size') },
      { flags: '--json', description: 'print JSON' },
    ],
    async run([images], opts) {
      const id = opts.model as string;
      const meta = cz.modelMeta(id);
      const weights = (opts.weights as string | undefined) ?? (meta.weights.length ? 'DEFAULT' : undefined);
      if (!weights) process.stderr.write(`convzoo predict: ${id} has no pretrained weights; predicting with random weights\n`);
      const model = await cz.createModel(id, { weights, onProgress: progressPrinter(`downloading ${id} weights`) });
      const results = await cz.predict(model, images as string[], { topk: opts.topk as number, batchSize: opts.batchSize as number });
      if (opts.json) out(JSON.stringify(results));
      else for (const r of results) {
        if ('error' in r) { process.stderr.write(`${r.source}: error: ${r.error}\n`); continue; }
        out(r.source);
        for (const p of r.predictions) out(`  ${(p.probability * 100).toFixed(2).padStart(6)}%  ${p.label}`);
      }
      return results.some((r) => 'error' in r) ? 3 : 0;
    },
  },
];

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
