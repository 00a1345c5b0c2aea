// Child process for test/io_hostile.test.ts: loads one weights file with the built library (dist/)
// and prints one JSON line: what happened, how long it took and the process's peak memory. A hostile
// file that crashes or hangs the process then fails the test without taking the test runner down.
//
//   node test/io_hostile_runner.mjs load|open FILE
//     load: cz.load(FILE), then dispose everything; open: cz.openWeights(FILE), entries, close.
import * as cz from '../dist/index.js';

const [mode, file] = process.argv.slice(2);
const peakRSS = () => process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB

// Bring libtorch's allocator and thread pool up first, so that baseRSS is the process's own cost.
cz.ones([4]).dispose();
const baseRSS = peakRSS();
const t0 = performance.now();
const result = { mode, baseRSS };
try {
  if (mode === 'load') {
    const tensors = await cz.load(file);
    result.ok = true;
    result.keys = Object.keys(tensors);
    result.bytes = Object.values(tensors).reduce((a, t) => a + t.numel() * cz.DTYPE_BYTES[t.dtype], 0);
    for (const t of Object.values(tensors)) t.dispose();
  } else if (mode === 'open') {
    const weights = await cz.openWeights(file);
    result.ok = true;
    result.keys = weights.entries.map((e) => e.name);
    await weights.close();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} catch (e) {
  result.ok = false;
  result.name = e?.name;
  result.code = e?.code;
  result.message = String(e?.message ?? e).slice(0, 500);
}
result.ms = Math.round(performance.now() - t0);
result.maxRSS = peakRSS();
console.log(JSON.stringify(result));
