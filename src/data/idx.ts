// The IDX format (MNIST, Fashion-MNIST): a 4-byte magic (0, 0, type, number of dimensions), one
// big-endian uint32 per dimension, then the values. Files may be gzip-compressed (detected by content).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ConvzooError } from '../errors.js';
import { ArrayImageDataset, sharedBytes } from './dataset.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const fail = (who: string, msg: string): never => {
  throw new ConvzooError(`${who}: ${msg}`, 'E_DATA', who);
};

/**
 * Parses IDX bytes of unsigned-byte values (type 0x08) with `ndim` dimensions; `name` labels errors.
 * `into` receives the values (e.g. shared memory); by default they are a view of `bytes`.
 */
export function parseIdx(bytes: Uint8Array, ndim: number, name = 'idx', into?: (n: number) => Uint8Array): IdxArray {
  const expected = (0x0800 + ndim).toString(16).padStart(8, '0');
  if (bytes.length < 4) fail(name, `truncated file: ${bytes.length} bytes, shorter than the 4-byte IDX magic number`);
  const magic = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08 || bytes[3] !== ndim) {
    fail(
      name,
      `bad magic number 0x${magic.toString(16).padStart(8, '0')}; expected 0x${expected} (IDX unsigned bytes, ${ndim} dimension${ndim > 1 ? 's' : ''})`,
    );
  }
  const header = 4 + 4 * ndim;
  if (bytes.length < header) fail(name, `truncated file: ${bytes.length} bytes, shorter than its ${header}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const have = bytes.length - header;
  if (have < count) fail(name, `truncated file: header says ${dims.join('x')} = ${count} bytes of data, found ${have}`);
  if (have > count) fail(name, `${have - count} unexpected bytes after the ${dims.join('x')} data (corrupt or not an IDX file)`);
  const src = bytes.subarray(header, header + count);
  let data = src;
  if (into) {
    data = into(count);
    data.set(src);
  }
  return { dims, data };
}

/** Reads `path`, gunzipping it if it starts with the gzip magic bytes. */
export function readMaybeGzip(path: string, who: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = readFileSync(path);
  } catch (e) {
    return fail(who, `cannot read ${path}: ${(e as Error).message}`);
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      return fail(who, `${path}: not a valid gzip file (${(e as Error).message})`);
    }
  }
  return raw;
}

/** `dir/base` or `dir/base.gz`, whichever exists; throws E_DATA naming both and `hint` otherwise. */
export function findIdxFile(dir: string, base: string, who: string, hint: string): string {
  for (const candidate of [join(dir, base), join(dir, `${base}.gz`)]) if (existsSync(candidate)) return candidate;
  return fail(who, `${join(dir, base)}(.gz) not found; ${hint}`);
}

export interface IdxDatasetOptions {
  /** Folder holding the four files (gzip or not). */
  root: string;
  /** The training split (`train-*`, default) or the test split (`t10k-*`). */
  train?: boolean;
}

/**
 * Loads an MNIST-layout pair of IDX files (`{train,t10k}-images-idx3-ubyte`, `...-labels-idx1-ubyte`)
 * as 1-channel images. `name` and `hint` make the error messages specific.
 */
export function loadIdxDataset(opts: IdxDatasetOptions & { name: string; classes: readonly string[]; hint: string }): ArrayImageDataset {
  const split = (opts.train ?? true) ? 'train' : 't10k';
  const who = opts.name;
  const imagesPath = findIdxFile(opts.root, `${split}-images-idx3-ubyte`, who, opts.hint);
  const labelsPath = findIdxFile(opts.root, `${split}-labels-idx1-ubyte`, who, opts.hint);
  const images = parseIdx(readMaybeGzip(imagesPath, who), 3, `${who}: ${imagesPath}`, sharedBytes);
  const labels = parseIdx(readMaybeGzip(labelsPath, who), 1, `${who}: ${labelsPath}`, sharedBytes);
  const [n, h, w] = images.dims;
  if (labels.dims[0] !== n) fail(who, `${labelsPath} has ${labels.dims[0]} labels but ${imagesPath} has ${n} images`);
  const k = opts.classes.length;
  for (let i = 0; i < n; i++) {
    if (labels.data[i] >= k) fail(who, `${labelsPath}: label ${labels.data[i]} at index ${i} is outside 0..${k - 1}`);
  }
  return new ArrayImageDataset(images.data, labels.data, [1, h, w], opts.classes);
}

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;
/** Where Debian's `dataset-fashion-mnist` package installs the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/**
 * Fashion-MNIST (Zalando): 60000 training and 10000 test 28x28 grayscale images, 10 classes.
 * Reads the IDX files from `root` (default: Debian's /usr/share/datasets/fashion-mnist).
 */
export class FashionMNIST extends ArrayImageDataset {
  constructor(opts: Partial<IdxDatasetOptions> = {}) {
    const ds = loadIdxDataset({
      root: opts.root ?? FASHION_MNIST_DIR,
      train: opts.train,
      name: 'fashion-mnist',
      classes: FASHION_MNIST_CLASSES,
      hint: 'install dataset-fashion-mnist or pass --data DIR',
    });
    super(ds.images, ds.labels, ds.shape, ds.classes);
  }
}
