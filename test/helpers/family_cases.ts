// One model per family, at a small input where the graph is the same at any size, and the helpers that
// make a random network behave like a trained one: the exporters' and the fast path's per-family tests.
import * as cz from '../../src/index.js';

/** [id, input size (undefined: the model's own)]. */
export const FAMILY_CASES: [id: string, inputSize: number | undefined][] = [
  ['resnet18', 64],
  ['resnet20', undefined],
  ['resnext50_32x4d', 64],
  ['alexnet', 64],
  ['alexnet_original', undefined],
  ['vgg11_bn', 32],
  ['googlenet', 64],
  ['googlenet_original', 96],
  ['mobilenet_v1_0_25', 64],
  ['mobilenet_v2', 64],
  ['mobilenet_v3_small', 64],
  ['legacy_seresnet18', 64],
  ['seresnext50_32x4d', 64],
  ['dpn68', 64],
  ['densenet121', 64],
  ['densenet_bc_100_k12', undefined],
  ['igc_l16m16', 64],
  ['shufflenet_v1_g3', 64],
  ['shufflenet_v2_x0_5', 64],
  ['resattnet56', 195],
  ['resattnet92_cifar', undefined],
  ['mnasnet0_5', 64],
  ['semnasnet_050', 64],
  ['efficientnet_b0', 64],
  ['tf_efficientnet_b0', 67],
  ['dm_nfnet_f0', 64],
  ['eca_nfnet_l0', 64],
];

/**
 * Running statistics as a trained network has them: each batch norm's statistics of a random batch (a
 * momentum of 1 for one train-mode forward). Batch norms then fold into non-trivial scales, and the
 * network stays well-conditioned as trained ones are (random running statistics blow deep networks'
 * logits up to ~1e6, where float32's summation order alone differs by more than 1e-4).
 */
export function calibrateBatchNorms(model: cz.ClassifierModel, shape: number[]): void {
  const norms = [...model.modules()].filter((m): m is cz.nn.BatchNorm2d => m instanceof cz.nn.BatchNorm2d);
  const saved = norms.map((m) => m.momentum);
  for (const m of norms) m.momentum = 1;
  const x = cz.randn([4, ...shape]);
  cz.noGrad(() => model.train().forward(x)).dispose();
  x.dispose();
  norms.forEach((m, i) => {
    m.momentum = saved[i];
  });
}

/** max |got - want| / max |want|. */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}
