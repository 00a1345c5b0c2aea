// Downloads into a cache folder ($CONVZOO_HOME, default ~/.cache/convzoo). The cache is keyed by URL:
// each URL gets its own file, named after the URL's last path segment (sanitised, for readability)
// plus a hash of the whole URL, so no URL can name a path outside the folder and two hosts serving
// the same file name never share an entry. An interrupted transfer is kept as `<file>.partial` and
// resumed with a Range request; a transfer that failed (HTTP error, web page, hash mismatch, size
// limit) leaves nothing. With a SHA-256 prefix, a cached file is verified on use, once: the digest is
// remembered in `<file>.verified` with the size and mtime it was computed for.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConvzooError, check, checkNumber } from '../errors.js';

/** Seconds without a byte before a download is aborted, unless idleTimeoutMs or $CONVZOO_DOWNLOAD_TIMEOUT says otherwise. */
const DEFAULT_IDLE_TIMEOUT_S = 60;
/** Largest file a download may produce, unless maxBytes or $CONVZOO_MAX_DOWNLOAD_BYTES says otherwise. */
const DEFAULT_MAX_BYTES = 8 * 1024 ** 3;
/** Bounds on the readable part of a cache file name (the whole name stays far below 255 bytes). */
const MAX_STEM_CHARS = 80;
const MAX_EXTENSION_CHARS = 12;
const URL_KEY_HEX_CHARS = 16;

export function convzooHome(): string {
  return process.env.CONVZOO_HOME || path.join(os.homedir(), '.cache', 'convzoo');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface CacheLocationOptions {
  /** Folder the files are stored in (default: $CONVZOO_HOME/checkpoints). */
  dir?: string;
}

export interface DownloadOptions extends CacheLocationOptions {
  /** Expected leading hex digits of the SHA-256 (any length). A cached file is checked against it too. */
  sha256Prefix?: string | null;
  /** Called as bytes arrive. */
  onProgress?: (received: number, total: number | null) => void;
  /** Abort when no bytes arrive for this many milliseconds (default: $CONVZOO_DOWNLOAD_TIMEOUT seconds, else 60 s; 0 disables). */
  idleTimeoutMs?: number;
  /** Refuse a file larger than this many bytes (default: $CONVZOO_MAX_DOWNLOAD_BYTES, else 8 GiB). */
  maxBytes?: number;
}

/** The path `url` is cached at (whether or not it has been downloaded). */
export function cachePathFor(url: string, opts: CacheLocationOptions = {}): string {
  return cacheFile(parseDownloadUrl(url, 'cachePathFor'), opts.dir);
}

/**
 * Removes the cached copy of `url` (its file, its verification record and any partial download), e.g.
 * after the downloaded file turned out not to be loadable. Returns whether anything was removed.
 */
export function evictCached(url: string, opts: CacheLocationOptions = {}): boolean {
  const file = cacheFile(parseDownloadUrl(url, 'evictCached'), opts.dir);
  let removed = false;
  for (const f of [file, verifiedRecordOf(file), partialOf(file)]) {
    if (existsSync(f)) {
      rmSync(f, { force: true });
      removed = true;
    }
  }
  return removed;
}

/**
 * Returns the cached path of `url`, downloading it first if needed. An interrupted download is kept as
 * `<file>.partial` and resumed with an HTTP Range request; a file whose hash does not match is deleted.
 * A cached file that no longer matches `sha256Prefix` is deleted and downloaded again.
 */
export async function downloadCached(url: string, opts: DownloadOptions = {}): Promise<string> {
  const fn = 'downloadCached';
  const parsed = parseDownloadUrl(url, fn);
  const limits = downloadLimits(opts, fn);
  const prefix = opts.sha256Prefix ? opts.sha256Prefix.toLowerCase() : null;
  check(prefix === null || /^[0-9a-f]{1,64}$/.test(prefix), fn, `sha256Prefix must be hex digits, got '${opts.sha256Prefix}'`);
  const file = cacheFile(parsed, opts.dir);
  mkdirSync(path.dirname(file), { recursive: true });

  if (existsSync(file)) {
    if (!prefix || (await cachedFileMatches(file, prefix))) return file;
    // Replaced or corrupted since it was stored: fetch a fresh copy.
    rmSync(file, { force: true });
    rmSync(verifiedRecordOf(file), { force: true });
  }
  const partial = partialOf(file);
  for (;;) {
    const keptBytes = await transfer(url, partial, opts, limits);
    if (!prefix) {
      renameSync(partial, file);
      rmSync(verifiedRecordOf(file), { force: true });
      return file;
    }
    const digest = await sha256File(partial);
    if (!digest.startsWith(prefix)) {
      rmSync(partial, { force: true });
      // A resumed file may have gone wrong in the part kept from before: try once from scratch.
      if (keptBytes > 0) continue;
      throw new ConvzooError(`download of ${url}: SHA-256 ${digest.slice(0, 16)}... does not start with ${prefix}; the corrupt file was removed`, 'E_HASH');
    }
    renameSync(partial, file);
    rememberVerified(file, digest);
    return file;
  }
}

// ---- cache names

/** Parses a URL we are willing to download: http(s) only, no credentials (they would end up in logs and names). */
function parseDownloadUrl(url: string, fn: string): URL {
  check(typeof url === 'string', fn, `expected a URL string, got ${typeof url}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConvzooError(`${fn}: '${url.slice(0, 200)}' is not a valid URL`, 'E_ARG', fn);
  }
  check(parsed.protocol === 'http:' || parsed.protocol === 'https:', fn, `only http and https URLs can be downloaded, got '${parsed.protocol}'`);
  check(
    !parsed.username && !parsed.password,
    fn,
    `URLs with credentials (user:password@host) are refused: ${parsed.protocol}//${parsed.host}${parsed.pathname}`,
  );
  parsed.hash = ''; // never sent to the server, so not part of what identifies the file
  return parsed;
}

/**
 * `<stem>-<16 hex of sha256(url)><extension>`: the stem and extension come from the URL's last path
 * segment, decoded and restricted to [A-Za-z0-9._-] with no leading dot or dash; the hash makes the
 * name unique to the URL.
 */
function cacheFileName(parsed: URL): string {
  const segment = parsed.pathname.split('/').pop() ?? '';
  let decoded = segment;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    /* malformed escapes: keep them as they are */
  }
  const base = (decoded.split(/[\\/]/).pop() ?? '').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[.-]+/, '');
  const extension = new RegExp(`(?<=[^.])\\.[A-Za-z0-9]{1,${MAX_EXTENSION_CHARS}}$`).exec(base)?.[0] ?? '';
  const stem =
    base
      .slice(0, base.length - extension.length)
      .slice(0, MAX_STEM_CHARS)
      .replace(/[.]+$/, '') || 'download';
  const urlKey = createHash('sha256').update(parsed.href).digest('hex').slice(0, URL_KEY_HEX_CHARS);
  return `${stem}-${urlKey}${extension}`;
}

function cacheFile(parsed: URL, dir?: string): string {
  const cacheDir = path.resolve(dir ?? path.join(convzooHome(), 'checkpoints'));
  const file = path.resolve(cacheDir, cacheFileName(parsed));
  // The name is sanitised above; this is the guarantee, should the rules ever change.
  if (path.dirname(file) !== cacheDir) throw new ConvzooError(`download of ${parsed.href}: cache name ${file} is outside ${cacheDir}`, 'E_ARG');
  return file;
}

const partialOf = (file: string) => `${file}.partial`;
const verifiedRecordOf = (file: string) => `${file}.verified`;

// ---- verification of cached files, remembered so that a multi-GB file is hashed once

interface VerifiedRecord {
  size: number;
  mtimeMs: number;
  sha256: string;
}

function rememberVerified(file: string, sha256: string, stats: Stats = statSync(file)): void {
  // Whole milliseconds: what every filesystem and utimes() round-trip keeps.
  const record: VerifiedRecord = { size: stats.size, mtimeMs: Math.trunc(stats.mtimeMs), sha256 };
  try {
    writeFileSync(verifiedRecordOf(file), JSON.stringify(record));
  } catch {
    /* a read-only cache still works, it is only verified on every use */
  }
}

function readVerified(file: string): VerifiedRecord | null {
  try {
    const r = JSON.parse(readFileSync(verifiedRecordOf(file), 'utf8')) as VerifiedRecord;
    return typeof r.size === 'number' && typeof r.mtimeMs === 'number' && typeof r.sha256 === 'string' ? r : null;
  } catch {
    return null;
  }
}

async function cachedFileMatches(file: string, prefix: string): Promise<boolean> {
  const stats = statSync(file);
  const record = readVerified(file);
  if (record && record.size === stats.size && record.mtimeMs === Math.trunc(stats.mtimeMs)) return record.sha256.startsWith(prefix);
  const digest = await sha256File(file);
  if (!digest.startsWith(prefix)) return false;
  rememberVerified(file, digest, stats);
  return true;
}

// ---- the transfer

interface DownloadLimits {
  idleTimeoutMs: number;
  maxBytes: number;
}

function downloadLimits(opts: DownloadOptions, fn: string): DownloadLimits {
  let idleTimeoutMs = opts.idleTimeoutMs;
  if (idleTimeoutMs === undefined) {
    const env = process.env.CONVZOO_DOWNLOAD_TIMEOUT?.trim();
    idleTimeoutMs = env ? Number(env) * 1000 : DEFAULT_IDLE_TIMEOUT_S * 1000;
    check(Number.isFinite(idleTimeoutMs) && idleTimeoutMs >= 0, fn, `CONVZOO_DOWNLOAD_TIMEOUT must be a number of seconds >= 0, got '${env}'`);
  } else {
    checkNumber(idleTimeoutMs, fn, 'idleTimeoutMs', 0);
  }
  let maxBytes = opts.maxBytes;
  if (maxBytes === undefined) {
    const env = process.env.CONVZOO_MAX_DOWNLOAD_BYTES?.trim();
    maxBytes = env ? Number(env) : DEFAULT_MAX_BYTES;
    check(Number.isSafeInteger(maxBytes) && maxBytes >= 1, fn, `CONVZOO_MAX_DOWNLOAD_BYTES must be a whole number of bytes >= 1, got '${env}'`);
  } else {
    check(Number.isSafeInteger(maxBytes) && maxBytes >= 1, fn, `expected maxBytes to be an integer >= 1, got ${String(maxBytes)}`);
  }
  return { idleTimeoutMs, maxBytes };
}

/**
 * Brings `partial` to the complete file, resuming what is there. Returns how many bytes of it were
 * kept from before (0 for a transfer from scratch). Throws E_IO; the partial file survives only an
 * interruption (network error, idle timeout, early end), which a later call resumes.
 */
async function transfer(url: string, partial: string, opts: DownloadOptions, limits: DownloadLimits): Promise<number> {
  let have = existsSync(partial) ? statSync(partial).size : 0;
  if (have > limits.maxBytes) {
    rmSync(partial, { force: true });
    have = 0;
  }
  const controller = new AbortController();
  let idleTimer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const restartIdleTimer = () => {
    if (!limits.idleTimeoutMs) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, limits.idleTimeoutMs);
  };
  const failure = (message: string, keepPartial: boolean) => {
    if (!keepPartial) rmSync(partial, { force: true });
    return new ConvzooError(`download of ${url}: ${message}`, 'E_IO');
  };
  const idleMessage = () => `no data for ${limits.idleTimeoutMs / 1000} s (idle timeout; raise it with idleTimeoutMs or CONVZOO_DOWNLOAD_TIMEOUT seconds)`;
  const keptNote = (bytes: number) => (bytes ? ` (kept ${bytes} bytes in ${partial}; run again to resume)` : '');
  const startOver = () => {
    rmSync(partial, { force: true });
    return transfer(url, partial, opts, limits);
  };

  try {
    restartIdleTimer();
    let res: Response;
    try {
      res = await fetch(url, { headers: have ? { Range: `bytes=${have}-` } : {}, signal: controller.signal });
    } catch (e) {
      throw failure(`${timedOut ? idleMessage() : describeNetworkError(e)}${keptNote(have)}`, true);
    }
    if (res.status === 416 && have) {
      await res.body?.cancel();
      // The server says the range starts at or past the end: complete if the sizes agree, else stale.
      const remoteSize = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '')?.[1];
      if (remoteSize !== undefined && Number(remoteSize) === have) return have;
      return startOver();
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw failure(`HTTP ${res.status} ${res.statusText}`, false);
    }
    const contentType = res.headers.get('content-type') ?? '';
    if (/\bx?html\b/i.test(contentType.split(';')[0])) {
      await res.body?.cancel();
      throw failure(`the server sent a web page (Content-Type: ${contentType}), not a weights file (a login or error page?); nothing was kept`, false);
    }
    const resumed = res.status === 206;
    if (resumed) {
      const start = /^bytes\s+(\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1];
      if (Number(start) !== have) {
        await res.body?.cancel();
        if (have) return startOver(); // not the part asked for: the kept bytes cannot be trusted to fit
        throw failure(`the server sent part of the file (HTTP 206, ${res.headers.get('content-range') ?? 'no Content-Range'}) without being asked`, false);
      }
    } else {
      have = 0; // the server ignored the range: start over
    }
    const lengthHeader = res.headers.get('content-length');
    const length = lengthHeader === null ? NaN : Number(lengthHeader);
    const total = Number.isSafeInteger(length) && length >= 0 ? have + length : null;
    if (total !== null && total > limits.maxBytes) {
      await res.body?.cancel();
      throw failure(`the file is ${total} bytes, more than the limit of ${limits.maxBytes} (maxBytes / CONVZOO_MAX_DOWNLOAD_BYTES); nothing was kept`, false);
    }

    const out = await open(partial, resumed ? 'a' : 'w');
    let received = have;
    try {
      for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
        restartIdleTimer();
        received += chunk.length;
        if (received > limits.maxBytes) {
          controller.abort();
          await out.close().catch(() => {});
          throw failure(`the transfer passed the limit of ${limits.maxBytes} bytes (maxBytes / CONVZOO_MAX_DOWNLOAD_BYTES); aborted and removed`, false);
        }
        await out.write(chunk);
        opts.onProgress?.(received, total);
      }
    } catch (e) {
      await out.close().catch(() => {});
      if (e instanceof ConvzooError) throw e;
      const size = existsSync(partial) ? statSync(partial).size : 0;
      const reason = timedOut ? idleMessage() : describeNetworkError(e);
      throw failure(`interrupted after ${received} bytes: ${reason}${keptNote(size)}`, true);
    }
    await out.close();
    // Only a stream that ended normally, with every announced byte, becomes a cached file.
    if (total !== null && received !== total) throw failure(`ended early: ${received} of ${total} bytes${keptNote(received)}`, true);
    return resumed ? have : 0;
  } finally {
    clearTimeout(idleTimer);
  }
}

// ---- naming the cause of a network error

/** What the error codes found in Node's fetch failures mean, and whether being offline is a likely cause. */
const NETWORK_ERRORS: Record<string, { meaning: string; offline?: boolean }> = {
  ECONNREFUSED: { meaning: 'connection refused' },
  ENOTFOUND: { meaning: 'host not found', offline: true },
  EAI_AGAIN: { meaning: 'host name lookup failed for now', offline: true },
  ENETUNREACH: { meaning: 'network unreachable', offline: true },
  EHOSTUNREACH: { meaning: 'host unreachable' },
  ECONNRESET: { meaning: 'connection reset' },
  ETIMEDOUT: { meaning: 'connection timed out' },
  EPIPE: { meaning: 'connection closed while sending' },
  UND_ERR_SOCKET: { meaning: 'connection closed by the server' },
  UND_ERR_CONNECT_TIMEOUT: { meaning: 'connection timed out' },
  UND_ERR_HEADERS_TIMEOUT: { meaning: 'no response headers in time' },
  UND_ERR_BODY_TIMEOUT: { meaning: 'the server stopped sending' },
  CERT_HAS_EXPIRED: { meaning: "the server's TLS certificate has expired" },
  DEPTH_ZERO_SELF_SIGNED_CERT: { meaning: "the server's TLS certificate is self-signed" },
  SELF_SIGNED_CERT_IN_CHAIN: { meaning: "the server's TLS certificate is not trusted" },
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: { meaning: "the server's TLS certificate is not trusted" },
  ERR_TLS_CERT_ALTNAME_INVALID: { meaning: "the server's TLS certificate is for another host" },
};

interface ErrorWithCause {
  message?: string;
  code?: unknown;
  cause?: unknown;
  errors?: unknown[];
  hostname?: unknown;
}

/**
 * Node's fetch throws TypeError('fetch failed') (or 'terminated' mid-body) and keeps the real error in
 * `cause`, sometimes an AggregateError over several addresses: find the code and say what it means.
 */
function describeNetworkError(e: unknown): string {
  let err = e as ErrorWithCause | undefined;
  let deepest = err;
  for (let depth = 0; err && depth < 6; depth++) {
    deepest = err;
    if (typeof err.code === 'string' && (NETWORK_ERRORS[err.code] || !err.cause)) break;
    err = (err.cause ?? err.errors?.[0]) as ErrorWithCause | undefined;
  }
  const code = typeof deepest?.code === 'string' ? deepest.code : null;
  const known = code ? NETWORK_ERRORS[code] : undefined;
  if (known) {
    const meaning = code === 'ENOTFOUND' && typeof deepest?.hostname === 'string' ? `host ${deepest.hostname} not found` : known.meaning;
    return `${meaning} (${code})${known.offline ? ' - are you offline?' : ''}`;
  }
  const message = deepest?.message || String(e);
  return code ? `${message} (${code})` : message;
}
