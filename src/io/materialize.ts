// From bytes to tensors: a storage's chunks go straight into one preallocated tensor.
import { ConvzooError } from '../errors.js';
import { DTYPE_BYTES, type DType, type Tensor } from '../tensor/tensor.js';
import { empty, fromBytes } from '../tensor/creation.js';

/** Sets a key as an own property, so that a file's '__proto__' key cannot touch the prototype. */
export function put(out: Record<string, Tensor>, name: string, t: Tensor): void {
  Object.defineProperty(out, name, { value: t, enumerable: true, writable: true, configurable: true });
}

export async function* mapChunks(chunks: AsyncIterable<Uint8Array>, fn: (c: Uint8Array) => Uint8Array): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) yield fn(c);
}

/**
 * A tensor holding the bytes of `chunks`, each copied before the next is asked for (so chunks may
 * share one buffer). Small data is one chunk and one copy. Large data goes
 * into a tensor allocated up front, chunk by chunk, so that a 500 MB storage never sits in memory
 * twice (file bytes and tensor): only one chunk at a time does.
 */
export async function tensorFromChunks(chunks: AsyncIterable<Uint8Array>, shape: number[], dtype: DType): Promise<Tensor> {
  const numel = shape.reduce((a, b) => a * b, 1);
  const elementSize = DTYPE_BYTES[dtype];
  let out: Tensor | undefined;
  let flat: Tensor | undefined;
  let at = 0;
  try {
    for await (const c of chunks) {
      if (!out && c.byteLength === numel * elementSize) {
        out = fromBytes(c, shape, dtype);
        at = numel;
        continue;
      }
      if (!out) {
        out = empty(shape, { dtype });
        flat = out.view(-1);
      }
      const n = c.byteLength / elementSize;
      if (!Number.isInteger(n) || at + n > numel) throw new ConvzooError(`load: more data than ${numel} elements of ${dtype}`, 'E_FORMAT', 'load');
      const piece = fromBytes(c, [n], dtype);
      const slot = flat!.narrow(0, at, n);
      try {
        slot.copy_(piece);
      } finally {
        slot.dispose();
        piece.dispose();
      }
      at += n;
    }
  } catch (e) {
    out?.dispose();
    throw e;
  } finally {
    flat?.dispose();
  }
  if (!out || at !== numel) {
    out?.dispose();
    throw new ConvzooError(`load: read ${at} of ${numel} elements of ${dtype}`, 'E_FORMAT', 'load');
  }
  return out;
}
