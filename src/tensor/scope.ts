// Deterministic tensor lifetime: tidy() scopes free every tensor made inside except what is returned
// or kept. Outside any scope a tensor lives until dispose() (or, as a safety net, garbage collection).
import { native, type MemoryInfo } from '../native.js';
import { ConvzooError } from '../errors.js';

export interface Disposable {
  dispose(): void;
}

const scopes: Set<Disposable>[] = [];

/** @internal Called by every new Tensor. */
export function track(t: Disposable): void {
  if (scopes.length) scopes[scopes.length - 1].add(t);
}

/** Removes a tensor from scope tracking, so that tidy() does not free it. Returns it. */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if ('_h' in (value as object) && typeof (value as Disposable).dispose === 'function') {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, depth + 1);
}

/**
 * Runs `fn` and frees every tensor created inside it, except the tensors it returns (directly, in an
 * array or in a plain object), which move to the enclosing scope. Synchronous functions only: an async
 * fn throws E_ARG (and what it made before its first await is freed); for async code use `using` or dispose().
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new ConvzooError(`tidy: expected a function, got ${fn === null ? 'null' : typeof fn}`, 'E_ARG', 'tidy');
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (isThenable(result)) {
    // The scope closed when fn returned, at its first await: what fn allocates after that is untracked
    // and what it returns cannot be kept. Free what it made so far and say how to write it instead.
    for (const t of scope) t.dispose();
    // The caller never sees this promise; a later rejection (often E_DISPOSED) would otherwise surface
    // as an unhandled rejection.
    result.then(undefined, () => {});
    throw new ConvzooError(
      'tidy: fn returned a Promise, but tidy() is synchronous: it frees tensors when fn ' +
        'returns, before the awaited work runs. Await outside and call tidy() inside, on the synchronous part: ' +
        '`const x = await load(); const y = tidy(() => model.forward(x));`',
      'E_ARG',
      'tidy',
    );
  }
  const returned = new Set<unknown>();
  collect(result, returned);
  for (const t of scope) {
    if (returned.has(t)) track(t);
    else t.dispose();
  }
  return result;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/** Live tensors (not yet disposed) and bytes held by libtorch's CPU allocator cache. */
export function memory(): MemoryInfo {
  return native.memory();
}

/**
 * Bounds how much freed memory the caching CPU allocator keeps for reuse (default: $CONVZOO_CPU_CACHE_MB,
 * else 4096 MiB); blocks beyond the new bound are freed at once. A long-running server whose batches vary in
 * size keeps a smaller cache (convzoo serve: 512 MiB).
 */
export function setAllocatorCacheLimit(mb: number): void {
  native.setCacheLimit(mb);
}

/** Releases the blocks the CPU allocator keeps for reuse. */
export function emptyCache(): void {
  native.emptyCache();
}
