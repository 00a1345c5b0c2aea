#!/usr/bin/env node
// Builds the web page (web/) into dist/web: app.js bundled by esbuild, index.html and style.css
// copied, and the one onnxruntime-web wasm binary its wasm backend loads (the bundled glue code is
// already inside app.js). `npm run build` runs it after tsc; it takes well under a second.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'web');
const require = createRequire(import.meta.url);
// The single-threaded and threaded SIMD build in one binary (onnxruntime-web's wasm backend).
const ORT_WASM = ['ort-wasm-simd-threaded.wasm'];

const t0 = performance.now();
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [path.join(root, 'web', 'app.ts')],
  outfile: path.join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
for (const f of ['index.html', 'style.css']) copyFileSync(path.join(root, 'web', f), path.join(out, f));
const ortDist = path.dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
for (const f of ORT_WASM) copyFileSync(path.join(ortDist, f), path.join(out, f));
if (!process.argv.includes('--quiet')) console.log(`build-web: dist/web in ${Math.round(performance.now() - t0)} ms`);
