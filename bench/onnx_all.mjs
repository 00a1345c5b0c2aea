#!/usr/bin/env node
// Every registered model through cz.exportOnnx: ONNX's checker (python3-onnx, full check and strict shape
// inference) and onnxruntime's logits against convzoo's eval forward at batch 1 and 3 from one
// dynamic-batch file. The test suite does one model per family (test/onnx_export.test.ts); this covers
// every id, at a small input by default (the graph is the same at any size; TF "same" padding is traced
// at the size given).
//
//   npx tsc -p tsconfig.json && node bench/onnx_all.mjs [--ids a,b] [--size 64] [--threads 2]
//
// Random weights with batch-norm statistics from a random batch (as a trained network has them); the
// error is max |onnxruntime - convzoo| / max |convzoo| over the logits.
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { calibrateBatchNorms, checkArgs, checkSize, relError } from './model_checks.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const cz = await import(path.join(here, '../dist/index.js'));
const ort = await import('onnxruntime-node');

const { ids, size: small, threads } = checkArgs(cz);
const dir = mkdtempSync(path.join(os.tmpdir(), 'convzoo-onnx-all-'));

const rows = [];
let failures = 0;
for (const id of ids) {
  const t0 = performance.now();
  let row;
  try {
    cz.manualSeed(0);
    const model = cz.buildModel(id, { numClasses: 10 });
    const size = checkSize(model.meta, small);
    calibrateBatchNorms(cz, model, [3, size, size]);
    const file = path.join(dir, `${id}.onnx`);
    const r = await cz.exportOnnx(model, file, { inputSize: size, batch: 'dynamic' });
    const check = JSON.parse(execFileSync('/usr/bin/python3', [path.join(here, '../tools/onnx_check.py'), file], { encoding: 'utf8' }).trim());
    const session = await ort.InferenceSession.create(file, { intraOpNumThreads: threads });
    let err = 0;
    let precision;
    for (const batch of [1, 3]) {
      const x = cz.randn([batch, 3, size, size]);
      const want = cz.noGrad(() => model.forward(x)).data();
      const got = (await session.run({ input: new ort.Tensor('float32', x.data(), x.shape) })).logits.data;
      const e = relError(got, want);
      err = Math.max(err, e);
      if (e >= 1e-4) {
        // A deep network with random weights: is that float32 itself? Both against float64.
        model.to('float64');
        const exact = cz.noGrad(() => model.forward(x.to('float64'))).data();
        model.to('float32');
        precision = { ort: relError(got, exact), convzoo: relError(want, exact) };
      }
    }
    await session.release();
    model.dispose();
    // Within 1e-4 of convzoo, or (where float32 rounding alone differs by that much) no further from the
    // float64 result than convzoo's own float32 forward, with a factor of 2.
    const ok = check.ok && (err < 1e-4 || (precision && precision.ort <= 2 * precision.convzoo));
    row = { id, size, nodes: r.nodes, mb: r.bytes / 1e6, checker: check.ok ? 'ok' : check.error.split('\n')[0], err, precision, ok };
  } catch (e) {
    row = { id, size: '-', nodes: '-', mb: 0, checker: '-', err: NaN, ok: false, error: String(e.message).split('\n')[0] };
  }
  row.seconds = (performance.now() - t0) / 1000;
  if (!row.ok) failures++;
  rows.push(row);
  console.log(
    `${row.ok ? 'ok  ' : 'FAIL'} ${id} @${row.size}: ${row.nodes} nodes, ${row.mb.toFixed(1)} MB, checker ${row.checker}, error ${row.err.toExponential(1)}` +
      `${row.precision ? ` (against float64: onnxruntime ${row.precision.ort.toExponential(1)}, convzoo float32 ${row.precision.convzoo.toExponential(1)})` : ''}` +
      `${row.error ? `, ${row.error}` : ''} (${row.seconds.toFixed(1)} s)`,
  );
}
rmSync(dir, { recursive: true, force: true });
const near = rows.filter((r) => r.ok && r.err < 1e-4).length;
console.log(`\n${rows.length - failures} of ${rows.length} models pass ONNX's checker and match convzoo at batch 1 and 3: ${near} within 1e-4,`);
console.log(`${rows.length - failures - near} as close to the float64 result as convzoo's own float32 forward (deep random networks).`);
process.exit(failures ? 1 : 0);
