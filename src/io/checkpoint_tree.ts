// PyTorch checkpoints: pick the tensors out of the unpickled tree (root selection, unwrapping,
// flattening to dotted keys, view checks), then read their storages on demand.
import { ConvzooError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { PyDict, type StorageRef, TensorRef, type PyValue } from './pickle.js';
import { formatError, type Source } from './source.js';
import type { Checkpoint } from './torch.js';
import { put, tensorFromChunks } from './materialize.js';
import type { LoadOptions, ReadPlan } from './types.js';

/** Guards against hostile pickles: shared sub-lists nested n deep make 2^n paths. */
const MAX_VISITS = 10_000_000;
const MAX_DEPTH = 200;

/** Dict keys as they appear in dotted names: str as is, int as digits, True/None as Python spells them. */
function keyName(k: unknown): string | undefined {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (k === null) return 'None';
  return undefined; // tuple keys: no tensor of a state dict sits under one
}

function children(v: PyValue): [string, PyValue][] {
  if (v instanceof PyDict) {
    const out: [string, PyValue][] = [];
    for (const [k, x] of v.map) {
      const name = keyName(k);
      if (name !== undefined) out.push([name, x]);
    }
    return out;
  }
  if (Array.isArray(v)) return v.map((x, i) => [String(i), x]);
  return [];
}

/** Whether any tensor sits inside v (memoised per container, so shared sub-trees cost once). */
function holdsTensors(v: PyValue, memo: Map<unknown, boolean>, depth = 0): boolean {
  if (v instanceof TensorRef) return true;
  if (!(v instanceof PyDict) && !Array.isArray(v)) return false;
  const known = memo.get(v);
  if (known !== undefined) return known;
  memo.set(v, false); // a cycle back to v adds nothing
  if (depth > MAX_DEPTH) return false;
  const r = children(v).some(([, x]) => holdsTensors(x, memo, depth + 1));
  memo.set(v, r);
  return r;
}

function selectRoot(src: Source, root: PyValue, key: string | undefined): PyValue {
  if (key !== undefined) {
    if (root instanceof PyDict && root.map.has(key)) return root.map.get(key)!;
    // A dotted path through nested dicts (keys that contain dots are matched whole, above).
    let v: PyValue = root;
    for (const part of key.split('.')) {
      const next: PyValue | undefined = children(v).find(([k]) => k === part)?.[1];
      if (next === undefined) {
        const top = children(root)
          .map(([k]) => `'${k}'`)
          .slice(0, 20)
          .join(', ');
        throw new ConvzooError(`load: ${src.name}: no entry '${key}' in the checkpoint (top-level keys: ${top || 'none'})`, 'E_NOT_FOUND', 'load');
      }
      v = next;
    }
    return v;
  }
  const memo = new Map<unknown, boolean>();
  let v = root;
  while (v instanceof PyDict) {
    const entries = children(v);
    if (entries.some(([, x]) => x instanceof TensorRef)) break;
    const holders = entries.filter(([, x]) => holdsTensors(x, memo));
    if (holders.length !== 1 || !(holders[0][1] instanceof PyDict)) break;
    v = holders[0][1];
  }
  return v;
}

function flatten(src: Source, root: PyValue): [string, TensorRef][] {
  const out: [string, TensorRef][] = [];
  const names = new Set<string>();
  const onPath = new Set<unknown>();
  let visits = 0;
  const walk = (v: PyValue, name: string, depth: number): void => {
    if (++visits > MAX_VISITS) throw formatError(src, "the checkpoint's object graph is too large (shared or cyclic containers?)");
    if (v instanceof TensorRef) {
      if (names.has(name)) throw formatError(src, `two tensors flatten to the same key '${name}'`);
      names.add(name);
      out.push([name, v]);
      return;
    }
    if (!(v instanceof PyDict) && !Array.isArray(v)) return;
    if (onPath.has(v)) return; // a cycle
    if (depth > MAX_DEPTH) throw formatError(src, `containers nested deeper than ${MAX_DEPTH}`);
    onPath.add(v);
    for (const [k, x] of children(v)) walk(x, name === '' ? k : `${name}.${k}`, depth + 1);
    onPath.delete(v);
  };
  walk(root, '', 0);
  return out;
}

export function planCheckpoint(src: Source, ckpt: Checkpoint, opts: LoadOptions): ReadPlan {
  const picks = flatten(src, selectRoot(src, ckpt.root, opts.key));
  if (opts.key !== undefined && !picks.length) throw new ConvzooError(`load: ${src.name}: entry '${opts.key}' holds no tensors`, 'E_NOT_FOUND', 'load');
  // Check every view against its storage before reading anything.
  for (const [name, t] of picks) checkView(src, name, t);
  return {
    entries: picks.map(([name, t]) => ({ name, shape: t.shape, dtype: t.storage.dtype })),
    metadata: {},
    async read(indices) {
      const byStorage = new Map<StorageRef, [string, TensorRef][]>();
      for (const i of indices) {
        const [name, t] = picks[i];
        const list = byStorage.get(t.storage);
        if (list) list.push([name, t]);
        else byStorage.set(t.storage, [[name, t]]);
      }
      const made = new Map<string, Tensor>();
      try {
        // One libtorch tensor per storage, then each saved tensor as a strided view of it: shared
        // storages stay shared and non-contiguous tensors keep their strides. The views keep the
        // storage's memory alive, so the storage tensor itself is disposed at once.
        for (const [s, views] of byStorage) {
          const base = await tensorFromChunks(ckpt.storageChunks(s), [s.numel], s.dtype);
          try {
            for (const [name, t] of views) made.set(name, base.asStrided(t.shape, t.stride, t.offset));
          } finally {
            base.dispose();
          }
        }
      } catch (e) {
        for (const t of made.values()) t.dispose();
        throw e;
      }
      // Return in the checkpoint's order, not storage order.
      const out: Record<string, Tensor> = {};
      for (const i of indices) put(out, picks[i][0], made.get(picks[i][0])!);
      return out;
    },
  };
}

/** The view must stay inside its storage (libtorch would also refuse, with a less helpful message). */
function checkView(src: Source, name: string, t: TensorRef): void {
  const numel = t.shape.reduce((a, d) => a * BigInt(d), 1n);
  if (numel === 0n) {
    if (t.offset > t.storage.numel) throw formatError(src, `tensor '${name}' starts at element ${t.offset} but its storage holds ${t.storage.numel}`);
    return;
  }
  let last = BigInt(t.offset);
  t.shape.forEach((d, i) => {
    last += BigInt(d - 1) * BigInt(t.stride[i]);
  });
  if (last >= BigInt(t.storage.numel)) {
    throw formatError(
      src,
      `tensor '${name}' (shape [${t.shape.join(', ')}], stride [${t.stride.join(', ')}], offset ${t.offset}) needs ${last + 1n} elements but its storage holds ${t.storage.numel}`,
    );
  }
}
