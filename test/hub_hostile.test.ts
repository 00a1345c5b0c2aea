// The download path against hostile or broken servers and URLs: names that try to leave the cache,
// a cache keyed by URL and verified on use, web pages instead of files, stalls, oversized files, and
// network errors that name their cause. Everything runs against local HTTP servers.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync, readdirSync, statSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConvzooError } from '../src/errors.js';
import { downloadCached, cachePathFor, evictCached } from '../src/models/hub.js';

const payload = Buffer.alloc(50_000);
for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) % 253;
const digest = createHash('sha256').update(payload).digest('hex');
const junk = Buffer.alloc(payload.length, 0x41); // same size as the payload, other bytes

const requests: string[] = [];
/** What /variant serves; tests switch it to simulate a server whose file changed or went bad. */
let variantBody = payload;

function serveStandard(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url!;
  requests.push(url);
  if (url.startsWith('/html/')) {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<html><body>Please log in</body></html>');
    return;
  }
  if (url.startsWith('/stall-headers/')) return; // never answers
  if (url.startsWith('/stall-body/')) {
    res.writeHead(200, { 'Content-Length': payload.length });
    res.write(payload.subarray(0, 1000));
    return;
  }
  if (url.startsWith('/chunked-cut/')) {
    // no Content-Length, some bytes, then the connection drops
    res.writeHead(200);
    res.write(payload.subarray(0, 1000));
    setTimeout(() => res.destroy(), 20);
    return;
  }
  if (url.startsWith('/big-announced/')) {
    res.writeHead(200, { 'Content-Length': 10_000_000 });
    res.write(payload.subarray(0, 1000));
    return;
  }
  if (url.startsWith('/big-stream/')) {
    // chunked, without end, until the client goes away
    res.writeHead(200);
    const timer = setInterval(() => {
      if (res.destroyed || !res.write(payload)) {
        if (res.destroyed) clearInterval(timer);
      }
    }, 5);
    res.on('close', () => clearInterval(timer));
    return;
  }
  if (url.startsWith('/hangup/')) {
    req.socket.destroy();
    return;
  }
  if (url.startsWith('/redirect/')) {
    res.writeHead(302, { Location: url.replace('/redirect/', '/file/') });
    res.end();
    return;
  }
  if (url.startsWith('/variant/')) {
    res.writeHead(200, { 'Content-Length': variantBody.length });
    res.end(variantBody);
    return;
  }
  const range = /bytes=(\d+)-/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  if (range) res.writeHead(206, { 'Content-Length': payload.length - start, 'Content-Range': `bytes ${start}-${payload.length - 1}/${payload.length}` });
  else res.writeHead(200, { 'Content-Length': payload.length, 'Content-Type': 'application/octet-stream' });
  res.end(payload.subarray(start));
}

let server: http.Server;
let otherServer: http.Server; // a second host, serving other bytes under the same file names
let base = '';
let otherBase = '';

async function listen(s: http.Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`;
}

beforeAll(async () => {
  server = http.createServer(serveStandard);
  otherServer = http.createServer((req, res) => {
    requests.push(`other:${req.url}`);
    res.writeHead(200, { 'Content-Length': junk.length });
    res.end(junk);
  });
  base = await listen(server);
  otherBase = await listen(otherServer);
});
afterAll(async () => {
  for (const s of [server, otherServer]) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'cz-hub-hostile-'));
const failureOf = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => e as ConvzooError,
  );

/** Every path under `root`, relative to it, except those under `skip`. */
function listTree(root: string, skip: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (full === skip) continue;
      out.push(path.relative(root, full));
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
  return out.sort();
}

const savedEnv = { ...process.env };
afterEach(() => {
  for (const key of ['CONVZOO_HOME', 'CONVZOO_DOWNLOAD_TIMEOUT', 'CONVZOO_MAX_DOWNLOAD_BYTES']) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
  variantBody = payload;
});

describe('cache names never leave the cache folder', () => {
  const hostileNames = [
    '..%2F..%2F..%2Fsomewhere%2Fnew.sh',
    '..%2F..%2Fnew.sh',
    '..%5C..%5C..%5Csomewhere%5Cnew.sh',
    '%2e%2e%2f%2e%2e%2fnew.sh',
    '%2E%2E%2F%2E%2E%2F%2E%2E%2Fsomewhere%2F.bashrc',
    '%2F',
    '...',
    '....',
    '%2E%2E%2E',
    'sub/%2E%2E',
    '.hidden.pth',
    '-rf.pth',
    'nul%00byte.pth',
    'caf%C3%A9%20w%C3%A9ights.pth',
    'bad%ZZescape.pth',
    `${'a'.repeat(3000)}.pth`,
    `x.${'e'.repeat(300)}`,
  ];

  it.each(hostileNames)('%s', async (name) => {
    const parent = tmp();
    const home = path.join(parent, 'a', 'b', 'home');
    mkdirSync(path.join(parent, 'a', 'somewhere'), { recursive: true }); // a target that exists, so an escape would succeed
    mkdirSync(home, { recursive: true });
    process.env.CONVZOO_HOME = home;
    const before = listTree(parent, home);
    const cacheDir = path.join(home, 'checkpoints');
    const url = `${base}/${name}`;
    const result = await downloadCached(url).catch((e: unknown) => e);
    expect(listTree(parent, home)).toEqual(before);
    expect(result).toBe(cachePathFor(url));
    const file = result as string;
    expect(path.dirname(file)).toBe(cacheDir);
    expect(path.basename(file)).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*-[0-9a-f]{16}(\.[A-Za-z0-9]{1,12})?$/);
    expect(path.basename(file).length).toBeLessThanOrEqual(120);
    expect(readFileSync(file).equals(payload)).toBe(true);
    expect(readdirSync(home)).toEqual(['checkpoints']);
    rmSync(parent, { recursive: true });
  });

  it('convzoo predict --weights with the %2F URL of the report writes nothing outside the cache, and keeps nothing', async () => {
    const parent = tmp();
    const home = path.join(parent, 'a', 'b', 'home');
    mkdirSync(path.join(parent, 'a', 'somewhere'), { recursive: true });
    mkdirSync(home, { recursive: true });
    const image = path.join(parent, 'x.png');
    writeFileSync(image, Buffer.from('89504e470d0a1a0a', 'hex'));
    const before = listTree(parent, home);
    const url = `${base}/..%2F..%2F..%2Fsomewhere%2Fnew.sh`;
    const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn('node', [path.resolve('dist/cli/main.js'), 'predict', image, '-m', 'resnet18', '--weights', url], {
        env: { ...process.env, CONVZOO_HOME: home },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      child.on('close', (status) => resolve({ status, stderr }));
    });
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/not a PyTorch checkpoint/);
    expect(listTree(parent, home)).toEqual(before); // no new.sh anywhere
    expect(readdirSync(path.join(home, 'checkpoints'))).toEqual([]); // the bad download was not kept
    rmSync(parent, { recursive: true });
  });

  it('keeps the file name readable', () => {
    const dir = '/cache';
    expect(path.basename(cachePathFor('https://download.pytorch.org/models/resnet18-f37072fd.pth', { dir }))).toMatch(/^resnet18-f37072fd-[0-9a-f]{16}\.pth$/);
    expect(path.basename(cachePathFor('https://host/x/model.safetensors?download=1', { dir }))).toMatch(/^model-[0-9a-f]{16}\.safetensors$/);
    expect(path.basename(cachePathFor('https://host/', { dir }))).toMatch(/^download-[0-9a-f]{16}$/);
  });

  it('refuses URLs that are not plain http(s), or carry credentials, with E_ARG', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://127.0.0.1/x.pth', 'not a url', 'javascript:alert(1)', `${base.replace('://', '://user:s3cret@')}/x.pth`]) {
      const err = await failureOf(downloadCached(url, { dir: tmp() }));
      expect(err, url).toBeInstanceOf(ConvzooError);
      expect(err!.code, url).toBe('E_ARG');
      expect(err!.message).not.toContain('s3cret');
    }
  });
});

describe('the cache is keyed by URL and verified on use', () => {
  it('two hosts serving the same file name get separate entries', async () => {
    const dir = tmp();
    const name = `resnet18-${digest.slice(0, 8)}.pth`;
    const planted = await downloadCached(`${otherBase}/${name}`, { dir });
    const genuine = await downloadCached(`${base}/${name}`, { dir, sha256Prefix: digest.slice(0, 8) });
    expect(genuine).not.toBe(planted);
    expect(readFileSync(genuine).equals(payload)).toBe(true);
    expect(readFileSync(planted).equals(junk)).toBe(true);
    rmSync(dir, { recursive: true });
  });

  it('a cached file that no longer matches the hash is downloaded again', async () => {
    const dir = tmp();
    const url = `${base}/variant/w.pth`;
    const file = await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 12) });
    writeFileSync(file, junk); // corrupted on disk (or planted by an older version)
    const before = requests.length;
    expect(await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 12) })).toBe(file);
    expect(requests.length).toBe(before + 1);
    expect(readFileSync(file).equals(payload)).toBe(true);
    rmSync(dir, { recursive: true });
  });

  it('fails with E_HASH and keeps nothing when the new download does not match either', async () => {
    const dir = tmp();
    const url = `${base}/variant/w.pth`;
    const file = await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 12) });
    writeFileSync(file, junk);
    variantBody = junk;
    const err = await failureOf(downloadCached(url, { dir, sha256Prefix: digest.slice(0, 12) }));
    expect(err?.code).toBe('E_HASH');
    expect(readdirSync(dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });

  it('remembers a verification, so a file is hashed once', async () => {
    const dir = tmp();
    const url = `${base}/file/remembered.pth`;
    const file = await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 8) });
    const record = JSON.parse(readFileSync(`${file}.verified`, 'utf8'));
    expect(record).toMatchObject({ size: payload.length, sha256: digest });
    // A whole-second mtime that the test can restore exactly; the record no longer fits, so this use
    // hashes the file again (still genuine: no request) and records it anew.
    const mtime = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
    utimesSync(file, mtime, mtime);
    const before = requests.length;
    expect(await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 8) })).toBe(file);
    expect(JSON.parse(readFileSync(`${file}.verified`, 'utf8')).mtimeMs).toBe(mtime.getTime());
    // Changed bytes with the recorded size and mtime: only a re-hash would notice, and none happens.
    writeFileSync(file, junk);
    utimesSync(file, mtime, mtime);
    expect(await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 8) })).toBe(file);
    expect(requests.length).toBe(before);
    expect(readFileSync(file).equals(junk)).toBe(true);
    // A changed mtime voids the record: the file is hashed, found wrong and downloaded again.
    utimesSync(file, mtime, new Date(mtime.getTime() + 5000));
    expect(await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 8) })).toBe(file);
    expect(readFileSync(file).equals(payload)).toBe(true);
    expect(requests.length).toBe(before + 1);
    rmSync(dir, { recursive: true });
  });

  it('a resumed download that does not match is fetched once more from scratch', async () => {
    const dir = tmp();
    const url = `${base}/file/resumed-wrong.pth`;
    writeFileSync(`${cachePathFor(url, { dir })}.partial`, junk.subarray(0, 20_000)); // kept from a file that has since changed
    const before = requests.length;
    const file = await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 8) });
    expect(requests.length).toBe(before + 2);
    expect(readFileSync(file).equals(payload)).toBe(true);
    rmSync(dir, { recursive: true });
  });

  it('evictCached removes the file and its verification record', async () => {
    const dir = tmp();
    const url = `${base}/file/evict.pth`;
    const file = await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 8) });
    expect(existsSync(`${file}.verified`)).toBe(true);
    expect(evictCached(url, { dir })).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
    expect(evictCached(url, { dir })).toBe(false);
    rmSync(dir, { recursive: true });
  });

  it('refuses a web page with E_IO and keeps nothing', async () => {
    const dir = tmp();
    const err = await failureOf(downloadCached(`${base}/html/resnet18-f37072fd.pth`, { dir }));
    expect(err?.code).toBe('E_IO');
    expect(err?.message).toMatch(/text\/html/);
    expect(readdirSync(dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });

  it('a transfer cut short without a Content-Length is not cached', async () => {
    const dir = tmp();
    const url = `${base}/chunked-cut/w.pth`;
    const err = await failureOf(downloadCached(url, { dir }));
    expect(err?.code).toBe('E_IO');
    expect(existsSync(cachePathFor(url, { dir }))).toBe(false);
    rmSync(dir, { recursive: true });
  });

  it('follows redirects, reports progress, and caches under the requested URL', async () => {
    const dir = tmp();
    const url = `${base}/redirect/moved.pth`;
    const progress: number[] = [];
    const file = await downloadCached(url, { dir, sha256Prefix: digest.slice(0, 8), onProgress: (received) => progress.push(received) });
    expect(file).toBe(cachePathFor(url, { dir }));
    expect(readFileSync(file).equals(payload)).toBe(true);
    expect(progress.at(-1)).toBe(payload.length);
    rmSync(dir, { recursive: true });
  });
});

describe('bounded time and size', () => {
  it('aborts a server that never answers after the idle timeout', { timeout: 10_000 }, async () => {
    const dir = tmp();
    const started = Date.now();
    const err = await failureOf(downloadCached(`${base}/stall-headers/w.pth`, { dir, idleTimeoutMs: 300 }));
    expect(err?.code).toBe('E_IO');
    expect(err?.message).toMatch(/idle timeout/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(readdirSync(dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });

  it('aborts a transfer that stalls, keeping the partial file for a resume; CONVZOO_DOWNLOAD_TIMEOUT sets the limit', { timeout: 10_000 }, async () => {
    const dir = tmp();
    process.env.CONVZOO_DOWNLOAD_TIMEOUT = '0.3';
    const url = `${base}/stall-body/w.pth`;
    const err = await failureOf(downloadCached(url, { dir }));
    expect(err?.code).toBe('E_IO');
    expect(err?.message).toMatch(/no data for 0.3 s \(idle timeout/);
    expect(statSync(`${cachePathFor(url, { dir })}.partial`).size).toBe(1000);
    expect(existsSync(cachePathFor(url, { dir }))).toBe(false);
    rmSync(dir, { recursive: true });
  });

  it('refuses an announced size above maxBytes before writing', { timeout: 10_000 }, async () => {
    const dir = tmp();
    const err = await failureOf(downloadCached(`${base}/big-announced/w.pth`, { dir, maxBytes: 1_000_000 }));
    expect(err?.code).toBe('E_IO');
    expect(err?.message).toMatch(/10000000 bytes, more than the limit of 1000000/);
    expect(readdirSync(dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });

  it('aborts and removes a stream that passes maxBytes; CONVZOO_MAX_DOWNLOAD_BYTES sets the limit', { timeout: 10_000 }, async () => {
    const dir = tmp();
    process.env.CONVZOO_MAX_DOWNLOAD_BYTES = '300000';
    const err = await failureOf(downloadCached(`${base}/big-stream/w.pth`, { dir }));
    expect(err?.code).toBe('E_IO');
    expect(err?.message).toMatch(/passed the limit of 300000 bytes/);
    expect(readdirSync(dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });

  it('rejects nonsensical limits with E_ARG', async () => {
    const dir = tmp();
    expect((await failureOf(downloadCached(`${base}/file/a.pth`, { dir, idleTimeoutMs: -1 })))?.code).toBe('E_ARG');
    expect((await failureOf(downloadCached(`${base}/file/a.pth`, { dir, maxBytes: 0 })))?.code).toBe('E_ARG');
    process.env.CONVZOO_DOWNLOAD_TIMEOUT = 'soon';
    expect((await failureOf(downloadCached(`${base}/file/a.pth`, { dir })))?.message).toMatch(/CONVZOO_DOWNLOAD_TIMEOUT/);
    rmSync(dir, { recursive: true });
  });
});

describe('network errors name their cause', () => {
  it('connection refused (ECONNREFUSED)', async () => {
    const closed = http.createServer();
    const url = `${await listen(closed)}/w.pth`;
    await new Promise<void>((r) => closed.close(() => r()));
    const dir = tmp();
    const err = await failureOf(downloadCached(url, { dir }));
    expect(err?.code).toBe('E_IO');
    expect(err?.message).toBe(`download of ${url}: connection refused (ECONNREFUSED)`);
    expect(readdirSync(dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });

  it('host not found (ENOTFOUND)', { timeout: 15_000 }, async () => {
    const dir = tmp();
    const err = await failureOf(downloadCached('http://nonexistent.invalid/x.pth', { dir, idleTimeoutMs: 5000 }));
    expect(err?.code).toBe('E_IO');
    // Without any DNS at all, the resolver may answer EAI_AGAIN instead; a slow one hits the timeout.
    expect(err?.message).toMatch(/host nonexistent\.invalid not found \(ENOTFOUND\) - are you offline\?|\(EAI_AGAIN\) - are you offline\?|idle timeout/);
    rmSync(dir, { recursive: true });
  });

  it('the server hanging up', async () => {
    const dir = tmp();
    const err = await failureOf(downloadCached(`${base}/hangup/w.pth`, { dir }));
    expect(err?.code).toBe('E_IO');
    expect(err?.message).toMatch(/connection (closed by the server \(UND_ERR_SOCKET\)|reset \(ECONNRESET\))/);
    rmSync(dir, { recursive: true });
  });
});
