// cz.summary: each layer's output shape, parameters and multiply-adds, found by running one forward
// pass with every leaf module's forward observed. MACs count convolutions and linear layers, as
// torchvision's published "GFLOPS" do.
import type { Tensor } from './tensor/tensor.js';
import { zeros, inferenceMode } from './tensor/creation.js';
import { tidy } from './tensor/scope.js';
import type { Module } from './nn/module.js';
import { Conv2d, Linear } from './nn/layers.js';
import { ClassifierModel } from './models/base.js';

export interface LayerRow {
  name: string;
  type: string;
  outputShape: number[];
  params: number;
  macs: number;
}

export interface ModelSummary {
  rows: LayerRow[];
  inputShape: number[];
  totalParams: number;
  trainableParams: number;
  /** Multiply-adds of one forward pass at batch 1. */
  totalMacs: number;
  toString(): string;
}

function layerMacs(m: Module, out: Tensor): number {
  const outNumel = out.numel() / out.shape[0];
  if (m instanceof Conv2d) return outNumel * (m.inChannels / m.groups) * m.kernelSize[0] * m.kernelSize[1];
  if (m instanceof Linear) return outNumel * m.inFeatures;
  return 0;
}

/** Summarises `model` for one input of shape (C, H, W) (default: the model's registered input size). */
export function summary(model: Module, inputShape?: readonly number[]): ModelSummary {
  const shape = inputShape ? [...inputShape] : model instanceof ClassifierModel && model.meta ? [...model.meta.inputSize] : [3, 224, 224];
  const rows: LayerRow[] = [];
  const patched: Module[] = [];
  for (const [name, m] of model.namedModules()) {
    if ([...m.children()].length) continue; // leaves only
    const original = m.forward;
    (m as { forward: (x: Tensor) => Tensor }).forward = function (this: Module, x: Tensor): Tensor {
      const out = original.call(this, x);
      let params = 0;
      for (const p of m.parameters(false)) params += p.numel();
      rows.push({ name, type: m.constructor.name, outputShape: out.shape, params, macs: layerMacs(m, out) });
      return out;
    };
    patched.push(m);
  }
  const wasTraining = model.training;
  model.eval();
  try {
    inferenceMode(() =>
      tidy(() => {
        model.forward(zeros([1, ...shape]));
      }),
    );
  } finally {
    for (const m of patched) delete (m as { forward?: unknown }).forward;
    model.train(wasTraining);
  }
  const totalParams = model.numParameters();
  const trainableParams = model.numParameters({ trainableOnly: true });
  const totalMacs = rows.reduce((s, r) => s + r.macs, 0);
  return {
    rows,
    inputShape: shape,
    totalParams,
    trainableParams,
    totalMacs,
    toString() {
      return formatSummary(this);
    },
  };
}

const fmt = (n: number): string => n.toLocaleString('en-US');

export function formatSummary(s: ModelSummary): string {
  const header = ['Layer', 'Type', 'Output shape', 'Params', 'MACs'];
  const body = s.rows.map((r) => [r.name, r.type, `[${r.outputShape.join(', ')}]`, fmt(r.params), fmt(r.macs)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  const rule = '-'.repeat(widths.reduce((a, b) => a + b + 2, -2));
  return [
    line(header),
    rule,
    ...body.map(line),
    rule,
    `Input: [1, ${s.inputShape.join(', ')}]`,
    `Total params: ${fmt(s.totalParams)} (trainable ${fmt(s.trainableParams)})`,
    `Total MACs: ${fmt(s.totalMacs)} (${(s.totalMacs / 1e9).toFixed(3)} GMACs)`,
  ].join('\n');
}
