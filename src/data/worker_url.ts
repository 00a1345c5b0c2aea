// Where the DataLoader's worker script is. Compiled (dist/), it is worker.js next to this file. Run
// from the TypeScript sources (vitest), Node cannot execute worker.ts, so the worker's modules (this
// folder and errors.ts, all pure JS once types are stripped) are transpiled once with the TypeScript
// compiler into node_modules/.cache/, where `import 'sharp'` still resolves.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConvzooError } from '../errors.js';

let cached: Promise<URL> | undefined;

export function workerScriptUrl(): Promise<URL> {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return Promise.resolve(new URL('./worker.js', here));
  cached ??= transpileWorker(fileURLToPath(here));
  return cached;
}

async function transpileWorker(thisFile: string): Promise<URL> {
  const dataDir = dirname(thisFile);
  const srcDir = dirname(dataDir);
  const sources = [
    join(srcDir, 'errors.ts'),
    ...readdirSync(dataDir)
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(dataDir, f)),
  ];
  const texts = sources.map((f) => readFileSync(f, 'utf8'));
  const hash = createHash('sha1').update(texts.join('\0')).digest('hex').slice(0, 16);
  const cacheRoot = join(dirname(srcDir), 'node_modules', '.cache', 'convzoo-data-worker');
  const outDir = join(cacheRoot, hash);
  const entry = pathToFileURL(join(outDir, 'data', 'worker.js'));
  if (existsSync(join(outDir, 'data', 'worker.js'))) return entry;
  let ts: typeof import('typescript');
  try {
    const m = await import('typescript');
    ts = ((m as { default?: typeof import('typescript') }).default ?? m) as typeof import('typescript');
  } catch (e) {
    throw new ConvzooError(
      `DataLoader: numWorkers > 0 from TypeScript sources needs the typescript package, or run the compiled dist/ (${(e as Error).message})`,
      'E_DATA',
      'DataLoader',
    );
  }
  const tmp = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(join(tmp, 'data'), { recursive: true });
  writeFileSync(join(tmp, 'package.json'), '{"type": "module"}\n');
  sources.forEach((file, i) => {
    const js = ts.transpileModule(texts[i], {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, sourceMap: false },
      fileName: file,
    }).outputText;
    writeFileSync(join(tmp, file.startsWith(dataDir) ? 'data' : '', file.slice(dirname(file).length + 1).replace(/\.ts$/, '.js')), js);
  });
  try {
    renameSync(tmp, outDir);
  } catch {
    rmSync(tmp, { recursive: true, force: true });
  } // another process won the race
  // Drop builds of older sources (left by earlier edits) after a day.
  for (const d of readdirSync(cacheRoot)) {
    const p = join(cacheRoot, d);
    try {
      if (d !== hash && Date.now() - statSync(p).mtimeMs > 86_400_000) rmSync(p, { recursive: true, force: true });
    } catch {
      /* in use or gone */
    }
  }
  return entry;
}
