#!/usr/bin/env node
// Every registered model through model.optimizeForInference(): the float32 fast path (batch norms folded,
// channels-last) against the eager forward, and the bf16 fast path's agreement on the top class. The test
// suite does one model per family (test/optimize.test.ts); this covers every id, at a small input by
// default (folding and layouts do not depend on the size; Residual Attention runs at 195, its minimum).
//
//   npx tsc -p tsconfig.json && node bench/fastpath_all.mjs [--ids a,b] [--size 64] [--batch 4] [--threads 2]
//
// Random weights with batch-norm statistics from a random batch (as a trained network has them). Pass:
// max |fast - eager| / max |eager| < 1e-4 over the logits. bf16 is reported (relative error, and how many
// of the batch keep their top class), not judged: random networks' logits are nearly tied, which a trained
// network's are not (see test/optimize.test.ts for bf16 on a trained one).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { calibrateBatchNorms, checkArgs, checkSize, relError } from './model_checks.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const cz = await import(path.join(here, '../dist/index.js'));

const { opt, ids, size: small, threads } = checkArgs(cz);
const batch = Number(opt('batch', 4));
cz.setNumThreads(threads);

const argmax = (data, classes) =>
  Array.from({ length: data.length / classes }, (_, i) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (data[i * classes + c] > data[i * classes + best]) best = c;
    return best;
  });

let failures = 0;
const t00 = performance.now();
for (const id of ids) {
  const t0 = performance.now();
  try {
    cz.manualSeed(0);
    const eager = cz.buildModel(id, { numClasses: 10 });
    const size = checkSize(eager.meta, small);
    calibrateBatchNorms(cz, eager, [3, size, size]);
    const x = cz.randn([batch, 3, size, size]);
    const want = cz.noGrad(() => eager.forward(x)).data();
    // A second copy for bf16, from the same weights and statistics (copied before the fold: a state
    // dict shares the parameters' storage, which folding rewrites).
    const bf = cz.buildModel(id, { numClasses: 10 });
    const state = eager.stateDict();
    bf.loadStateDict(state);
    for (const t of Object.values(state)) t.dispose();
    const fast32 = eager.optimizeForInference();
    const got32 = cz.noGrad(() => eager.forward(x)).data();
    bf.optimizeForInference({ dtype: 'bfloat16' });
    const got16 = cz.noGrad(() => bf.forward(x)).data();
    const err32 = relError(got32, want);
    const err16 = relError(got16, want);
    const top = argmax(want, 10);
    const kept = argmax(got16, 10).filter((c, i) => c === top[i]).length;
    const ok = err32 < 1e-4;
    if (!ok) failures++;
    console.log(
      `${ok ? 'ok  ' : 'FAIL'} ${id} @${size}: float32 fast path ${err32.toExponential(1)} (${fast32.foldedBatchNorms} batch norms folded, ${fast32.batchNorms} kept), ` +
        `bf16 ${err16.toExponential(1)}, top class kept ${kept}/${batch} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    x.dispose();
    eager.dispose();
    bf.dispose();
  } catch (e) {
    failures++;
    console.log(`FAIL ${id}: ${String(e.message).split('\n')[0]}`);
  }
}
console.log(
  `\n${ids.length - failures} of ${ids.length} models: the float32 fast path within 1e-4 of eager (${((performance.now() - t00) / 60000).toFixed(1)} min).`,
);
process.exit(failures ? 1 : 0);
