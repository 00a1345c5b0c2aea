// ImageFolder: root/<class>/**/<image>, class names sorted (torchvision's layout and order), images
// decoded by sharp (JPEG, PNG, WebP, GIF, TIFF, AVIF). An unreadable image is reported and skipped.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ConvzooError } from '../errors.js';
import { type Dataset, type DatasetSpec, type Sample, type SplitOptions, type Subset, checkIndex, trainValSplit } from './dataset.js';
import { type Image, fromUint8 } from './image.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif'] as const;

type SharpModule = typeof import('sharp').default;
let sharpModule: Promise<SharpModule> | undefined;

/** Loads sharp once (an optional dependency: only ImageFolder needs it). */
export function loadSharp(): Promise<SharpModule> {
  sharpModule ??= import('sharp').then(
    (m) => m.default,
    (e: Error) => {
      sharpModule = undefined;
      throw new ConvzooError(`image-folder: decoding images needs the sharp package (npm i sharp): ${e.message}`, 'E_IMAGE', 'image-folder');
    },
  );
  return sharpModule;
}

/** Decodes an image file to CHW floats in [0, 1]: 3 channels for 'RGB' (alpha dropped, grey expanded), 1 for 'L'. */
export async function decodeImage(path: string, mode: 'RGB' | 'L' = 'RGB'): Promise<Image> {
  const sharp = await loadSharp();
  try {
    let pipeline = sharp(path).removeAlpha();
    pipeline = mode === 'L' ? pipeline.grayscale() : pipeline.toColourspace('srgb');
    const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return fromUint8(data, info.channels, info.height, info.width, 'hwc');
  } catch (e) {
    const reason = (e as Error).message.split('\n')[0];
    throw new ConvzooError(`image-folder: cannot decode ${path}: ${reason}`, 'E_IMAGE', 'image-folder');
  }
}

export interface ImageFolderOptions {
  /** File extensions to include, compared case-insensitively (default: IMAGE_EXTENSIONS). */
  extensions?: readonly string[];
  /** 'RGB' (default, 3 channels) or 'L' (1 channel). */
  mode?: 'RGB' | 'L';
  /** Called once per image that cannot be read (the image is skipped). */
  onWarning?: (message: string) => void;
}

export interface SkippedImage {
  index: number;
  path: string;
  message: string;
}

/**
 * One sub-folder per class under `root`; class names are the sorted folder names, class i's label is i.
 * Files are found recursively and listed in sorted order. Corrupt images are skipped when loaded and
 * listed in `skipped` (and passed to `onWarning`); `verify()` finds them up front.
 */
export class ImageFolder implements Dataset {
  readonly root: string;
  classes: readonly string[];
  files: string[];
  targets: Int32Array;
  readonly mode: 'RGB' | 'L';
  readonly skipped: SkippedImage[] = [];
  private readonly onWarning?: (message: string) => void;
  private readonly reported = new Set<string>();

  constructor(root: string, opts: ImageFolderOptions = {}) {
    this.root = root;
    this.mode = opts.mode ?? 'RGB';
    this.onWarning = opts.onWarning;
    this.classes = [];
    this.files = [];
    this.targets = new Int32Array(0);
    if (root !== '') this.scan(opts.extensions ?? IMAGE_EXTENSIONS);
  }

  /** @internal Rebuilds a folder dataset from its file list (worker threads). */
  static fromList(files: string[], targets: Int32Array, classes: string[], mode: 'RGB' | 'L'): ImageFolder {
    const ds = new ImageFolder('', { mode });
    ds.files = files;
    ds.targets = targets;
    ds.classes = classes;
    return ds;
  }

  private scan(extensions: readonly string[]): void {
    const who = 'image-folder';
    if (!existsSync(this.root) || !statSync(this.root).isDirectory()) {
      throw new ConvzooError(`${who}: ${this.root} not found or not a folder; expected ${this.root}/<class>/<image files>`, 'E_DATA', who);
    }
    const exts = new Set(extensions.map((e) => e.toLowerCase()));
    const classes = readdirSync(this.root, { withFileTypes: true })
      .filter((d) => d.isDirectory() || (d.isSymbolicLink() && statSync(join(this.root, d.name)).isDirectory()))
      .map((d) => d.name)
      .sort();
    if (classes.length === 0)
      throw new ConvzooError(`${who}: no class sub-folders in ${this.root}; expected ${this.root}/<class>/<image files>`, 'E_DATA', who);
    const files: string[] = [];
    const targets: number[] = [];
    classes.forEach((cls, label) => {
      const found: string[] = [];
      walk(join(this.root, cls), exts, found);
      if (found.length === 0) {
        throw new ConvzooError(`${who}: class folder ${join(this.root, cls)} has no images (${[...exts].join(', ')})`, 'E_DATA', who);
      }
      for (const f of found) {
        files.push(f);
        targets.push(label);
      }
    });
    this.classes = classes;
    this.files = files;
    this.targets = Int32Array.from(targets);
  }

  get length(): number {
    return this.files.length;
  }

  /** Loads image i; throws E_IMAGE (after reporting it) if it cannot be decoded. */
  async get(index: number): Promise<Sample> {
    checkIndex(this, index, 'image-folder');
    try {
      return { image: await decodeImage(this.files[index], this.mode), label: this.targets[index] };
    } catch (e) {
      if (e instanceof ConvzooError && e.code === 'E_IMAGE') this.reportSkipped(index, e.message);
      throw e;
    }
  }

  reportSkipped(index: number, message: string): void {
    const path = this.files[index];
    if (this.reported.has(path)) return;
    this.reported.add(path);
    this.skipped.push({ index, path, message });
    this.onWarning?.(message);
  }

  /**
   * Reads every file's header and drops the ones sharp cannot open (reported like load failures).
   * Cheap next to decoding, but it touches every file: skip it for very large folders.
   */
  async verify(opts: { concurrency?: number } = {}): Promise<SkippedImage[]> {
    const sharp = await loadSharp();
    const bad = new Set<number>();
    const found: SkippedImage[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < this.files.length) {
        const i = next++;
        try {
          const meta = await sharp(this.files[i]).metadata();
          if (!meta.width || !meta.height) throw new Error('no image size in the header');
        } catch (e) {
          bad.add(i);
          const message = `image-folder: cannot decode ${this.files[i]}: ${(e as Error).message.split('\n')[0]}`;
          this.reportSkipped(i, message);
          found.push({ index: i, path: this.files[i], message });
        }
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency ?? 8 }, worker));
    if (bad.size) {
      const keep = this.files.map((_, i) => i).filter((i) => !bad.has(i));
      this.files = keep.map((i) => this.files[i]);
      this.targets = Int32Array.from(keep, (i) => this.targets[i]);
    }
    return found.sort((a, b) => a.index - b.index);
  }

  /** A seeded train/validation split (stratified by default); see trainValSplit. */
  split(opts: SplitOptions = {}): { train: Subset; val: Subset } {
    return trainValSplit(this, opts);
  }

  /** Files relative to the root, for display. */
  relativePath(index: number): string {
    return relative(this.root, this.files[index]);
  }

  workerSpec(): DatasetSpec {
    return { kind: 'folder', files: this.files, targets: this.targets, classes: [...this.classes], mode: this.mode };
  }
}

/** Image files under dir, recursively: each folder's files sorted, then its sub-folders in sorted order. */
function walk(dir: string, exts: Set<string>, out: string[]): void {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const subdirs: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    const isDir = e.isDirectory() || (e.isSymbolicLink() && existsSync(p) && statSync(p).isDirectory());
    if (isDir) {
      subdirs.push(p);
      continue;
    }
    const dot = e.name.lastIndexOf('.');
    if (dot >= 0 && exts.has(e.name.slice(dot).toLowerCase())) out.push(p);
  }
  for (const d of subdirs) walk(d, exts, out);
}
