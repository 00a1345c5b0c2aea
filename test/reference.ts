// The references the tests compare against: Debian's python3 with torch and torchvision, and
// Debian's Fashion-MNIST files (all installed by scripts/setup.sh). A missing one fails the tests that
// need it with a message saying what to install; no test skips silently.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Debian's own python3, the one python3-torch installs into (another python3 on PATH lacks torch). */
export const PYTHON = '/usr/bin/python3';
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const checked = new Map<string, string | null>();

/** Throws a clear error unless /usr/bin/python3 imports every module named. */
export function requirePython(...modules: string[]): string {
  const key = modules.join(',');
  if (!checked.has(key)) {
    let problem: string | null = null;
    if (!existsSync(PYTHON)) problem = `${PYTHON} is missing`;
    else {
      try {
        execFileSync(PYTHON, ['-c', modules.map((m) => `import ${m}`).join('; ') || 'pass'], { stdio: 'pipe' });
      } catch (e) {
        problem = `${PYTHON} cannot import ${modules.join(', ')} (${String((e as { stderr?: Buffer }).stderr ?? e)
          .trim()
          .split('\n')
          .pop()})`;
      }
    }
    checked.set(key, problem);
  }
  const problem = checked.get(key);
  if (problem)
    throw new Error(`the Python reference is not installed: ${problem}. Run sh scripts/setup.sh (it installs python3-torch and python3-torchvision).`);
  return PYTHON;
}

/** Throws a clear error unless Debian's Fashion-MNIST files are there. */
export function requireFashionMnist(): string {
  if (!existsSync(`${FASHION_MNIST_DIR}/train-images-idx3-ubyte.gz`)) {
    throw new Error(`Fashion-MNIST is not installed in ${FASHION_MNIST_DIR}. Run sh scripts/setup.sh (it installs dataset-fashion-mnist).`);
  }
  return FASHION_MNIST_DIR;
}

/** Writes the first `n` images and labels of a Fashion-MNIST split into `dir` as IDX files (a small dataset folder). */
export function sliceFashionMnist(split: 'train' | 't10k', n: number, dir: string): void {
  const img = gunzipSync(readFileSync(`${FASHION_MNIST_DIR}/${split}-images-idx3-ubyte.gz`));
  const lab = gunzipSync(readFileSync(`${FASHION_MNIST_DIR}/${split}-labels-idx1-ubyte.gz`));
  const ih = Buffer.from(img.subarray(0, 16));
  ih.writeUInt32BE(n, 4);
  const lh = Buffer.from(lab.subarray(0, 8));
  lh.writeUInt32BE(n, 4);
  writeFileSync(path.join(dir, `${split}-images-idx3-ubyte`), Buffer.concat([ih, img.subarray(16, 16 + n * 784)]));
  writeFileSync(path.join(dir, `${split}-labels-idx1-ubyte`), Buffer.concat([lh, lab.subarray(8, 8 + n)]));
}
