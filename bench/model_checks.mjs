// What the every-model correctness scripts (bench/onnx_all.mjs, bench/fastpath_all.mjs) share: a random
// network made to behave like a trained one, the input size to check it at, and the error measure.

/**
 * Each batch norm's running statistics from one random batch (momentum 1 for a train-mode forward): deep
 * random networks keep trained-like scales, where random statistics would blow logits up to ~1e6.
 */
export function calibrateBatchNorms(cz, model, shape) {
  const norms = [...model.modules()].filter((m) => m instanceof cz.nn.BatchNorm2d);
  const saved = norms.map((m) => m.momentum);
  for (const m of norms) m.momentum = 1;
  cz.noGrad(() => model.train().forward(cz.randn([4, ...shape]))).dispose();
  norms.forEach((m, i) => {
    m.momentum = saved[i];
  });
  model.eval();
}

/** The input size to check a model at: `small` or its own if smaller (Residual Attention: 195, its head's minimum; AlexNet and VGG: their own). */
export function checkSize(meta, small) {
  if (meta.family === 'resattnet') return 195;
  // Their heads pool to a fixed grid (AlexNet 6x6, VGG 7x7): ONNX export needs even windows, so their own size.
  if (meta.family === 'alexnet' || meta.family === 'vgg') return meta.inputSize[1];
  return Math.min(meta.inputSize[1], small);
}

/** max |got - want| / max |want|. */
export function relError(got, want) {
  let d = 0;
  let m = 1e-12;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return d / m;
}

/** The scripts' shared options: --ids a,b (default: every registered id), --size, --threads, and opt(name, default). */
export function checkArgs(cz, argv = process.argv.slice(2)) {
  const opt = (name, dflt) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : dflt;
  };
  return { opt, ids: opt('ids') ? opt('ids').split(',') : cz.listModels(), size: Number(opt('size', 64)), threads: Number(opt('threads', 2)) };
}
