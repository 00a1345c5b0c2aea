// Loads the libtorch addon. Only this file and tensor/ know that the native side exists.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';
import { ConvzooError } from './errors.js';
import type { NativeOps } from './native_ops.js';

/** An opaque reference to one libtorch tensor, owned by a Tensor. */
export type Handle = { readonly __handle: unique symbol };
export type { NativeOps };

export interface MemoryInfo {
  /** Live (not disposed) tensor handles. */
  tensors: number;
  /** Storage bytes those tensors reference (a view counts its whole storage). */
  bytes: number;
  /** Bytes the caching CPU allocator keeps for reuse. */
  cachedBytes: number;
  cachingAllocator: boolean;
}

export interface NativeAddon {
  /** The op table, typed by src/native_ops.ts. */
  ops: NativeOps;
  dispose(h: Handle): void;
  memory(): MemoryInfo;
  emptyCache(): void;
  /** Bounds the caching allocator's cache of freed blocks (MiB); what is beyond it is freed. */
  setCacheLimit(mb: number): void;
  setErrorClass(cls: unknown): void;
  torchVersion: string;
  config: string;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function load(): NativeAddon {
  const require = createRequire(import.meta.url);
  const candidates = [path.join(root, 'build/Release/convzoo.node'), path.join(root, 'build/Debug/convzoo.node')];
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    throw new ConvzooError(
      `convzoo: the native addon is not built (looked for ${candidates[0]}). Run \`npm rebuild convzoo\` ` +
        '(or `npm run build:native` in the repository); it needs libtorch: apt-get install libtorch-dev ' +
        'libopenblas0-openmp, or pip install torch, or LIBTORCH=/path/to/libtorch.',
      'E_NATIVE',
    );
  }
  // libgomp's threads spin while they wait for work by default. When another process shares the cores
  // (a server, a data worker, a second training job), spinning threads starve the working ones: measured
  // here, a resnet20 training step ran 10x slower (44 vs 476 img/s) with one busy neighbour. Passive
  // waiting avoids that collapse; OMP_WAIT_POLICY=active restores spinning. Read when libgomp loads.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  try {
    const addon = require(file) as NativeAddon;
    addon.setErrorClass(ConvzooError);
    // libtorch picks one thread per physical core, 1 on small VMs; use every core we are given
    // unless the user set OMP_NUM_THREADS.
    if (!process.env.OMP_NUM_THREADS) addon.ops.set_num_threads(os.availableParallelism());
    return addon;
  } catch (e) {
    throw new ConvzooError(
      `convzoo: loading ${file} failed: ${(e as Error).message}. ` + 'If libtorch moved or was upgraded, rebuild with `npm rebuild convzoo`.',
      'E_NATIVE',
    );
  }
}

export const native: NativeAddon = load();
export const ops = native.ops;
