// Downloads into a cache folder ($CONVZOO_HOME, default ~/.cache/convzoo), resuming partial files and
// verifying the SHA-256 prefix that torchvision puts in its file names.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConvzooError } from '../errors.js';

export function convzooHome(): string {
  return process.env.CONVZOO_HOME || path.join(os.homedir(), '.cache', 'convzoo');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface DownloadOptions {
  /** Expected leading hex digits of the SHA-256 (any length). */
  sha256Prefix?: string | null;
  /** Called as bytes arrive. */
  onProgress?: (received: number, total: number | null) => void;
  /** Folder to store the file in (default: $CONVZOO_HOME/checkpoints). */
  dir?: string;
}

/**
 * Returns the cached path of `url`, downloading it first if needed. An interrupted download is kept as
 * `<file>.partial` and resumed with an HTTP Range request; a file whose hash does not match is deleted.
 */
export async function downloadCached(url: string, opts: DownloadOptions = {}): Promise<string> {
  const dir = opts.dir ?? path.join(convzooHome(), 'checkpoints');
  mkdirSync(dir, { recursive: true });
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() || 'download');
  const file = path.join(dir, name);
  if (existsSync(file)) return file;
  const partial = `${file}.partial`;
  let have = existsSync(partial) ? statSync(partial).size : 0;
  let res: Response;
  try {
    res = await fetch(url, { headers: have ? { Range: `bytes=${have}-` } : {} });
  } catch (e) {
    throw new ConvzooError(`download of ${url} failed: ${(e as Error).message}${have ? ` (${have} bytes kept in ${partial} for a later resume)` : ''}`, 'E_IO');
  }
  if (res.status === 416 && have) { // the partial file is already complete
    await res.body?.cancel();
  } else {
    if (!res.ok) { await res.body?.cancel(); throw new ConvzooError(`download of ${url} failed: HTTP ${res.status} ${res.statusText}`, 'E_IO'); }
    const resumed = res.status === 206;
    if (!resumed) have = 0; // the server ignored the range: start over
    const len = Number(res.headers.get('content-length'));
    const total = Number.isFinite(len) && len > 0 ? len + have : null;
    const out = createWriteStream(partial, { flags: resumed ? 'a' : 'w' });
    let received = have;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        received += chunk.length;
        opts.onProgress?.(received, total);
      }
    } catch (e) {
      await new Promise<void>((r) => out.end(() => r()));
      throw new ConvzooError(`download of ${url} interrupted after ${received} bytes: ${(e as Error).message} (kept ${partial}; run again to resume)`, 'E_IO');
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    if (total !== null && received !== total) {
      throw new ConvzooError(`download of ${url} ended early: ${received} of ${total} bytes (kept ${partial}; run again to resume)`, 'E_IO');
    }
  }
  if (opts.sha256Prefix) {
    const digest = await sha256File(partial);
    if (!digest.startsWith(opts.sha256Prefix)) {
      rmSync(partial, { force: true });
      throw new ConvzooError(`download of ${url}: SHA-256 ${digest.slice(0, 16)}... does not start with ${opts.sha256Prefix}; the corrupt file was removed`, 'E_HASH');
    }
  }
  renameSync(partial, file);
  return file;
}
