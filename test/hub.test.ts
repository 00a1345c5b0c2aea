// The download path, against a local HTTP server serving files the test makes: caching, resume of a
// partial file with a Range request, hash verification, and HTTP errors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { downloadCached, ConvzooError } from '../src/index.js';
import { cachePathFor } from '../src/models/hub.js';

const payload = Buffer.alloc(300_000);
for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) % 251;
const digest = createHash('sha256').update(payload).digest('hex');

let server: http.Server;
let base = '';
const requests: { url: string; range?: string }[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push({ url: req.url!, range: req.headers.range });
    if (req.url!.startsWith('/missing')) {
      res.writeHead(404);
      res.end();
      return;
    }
    if (req.url!.startsWith('/cut')) {
      // announces the whole file, sends half, then drops the connection
      res.writeHead(200, { 'Content-Length': payload.length });
      res.write(payload.subarray(0, 1000));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (m) res.writeHead(206, { 'Content-Length': payload.length - start, 'Content-Range': `bytes ${start}-${payload.length - 1}/${payload.length}` });
    else res.writeHead(200, { 'Content-Length': payload.length });
    res.end(payload.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'cz-hub-'));

describe('downloadCached', () => {
  it('downloads, verifies the hash prefix, and serves the cached copy afterwards', async () => {
    const dir = tmp();
    const progress: number[] = [];
    const file = await downloadCached(`${base}/w-${digest.slice(0, 8)}.pth`, { dir, sha256Prefix: digest.slice(0, 8), onProgress: (r) => progress.push(r) });
    expect(readFileSync(file).equals(payload)).toBe(true);
    expect(progress.at(-1)).toBe(payload.length);
    const before = requests.length;
    expect(await downloadCached(`${base}/w-${digest.slice(0, 8)}.pth`, { dir })).toBe(file);
    expect(requests.length).toBe(before); // no new request
    rmSync(dir, { recursive: true });
  });

  it('resumes a partial file with a Range request', async () => {
    const dir = tmp();
    writeFileSync(`${cachePathFor(`${base}/r.pth`, { dir })}.partial`, payload.subarray(0, 123_456));
    const file = await downloadCached(`${base}/r.pth`, { dir, sha256Prefix: digest.slice(0, 10) });
    expect(requests.at(-1)!.range).toBe('bytes=123456-');
    expect(readFileSync(file).equals(payload)).toBe(true);
    rmSync(dir, { recursive: true });
  });

  it('removes a file whose hash does not match', async () => {
    const dir = tmp();
    const err = await downloadCached(`${base}/bad.pth`, { dir, sha256Prefix: '00000000' }).catch((e) => e);
    expect(err).toBeInstanceOf(ConvzooError);
    expect(err.code).toBe('E_HASH');
    expect(err.message).toMatch(/does not start with 00000000/);
    expect(readdirSync(dir)).toEqual([]); // neither the file nor a partial one
    rmSync(dir, { recursive: true });
  });

  it('reports HTTP errors and keeps an interrupted download for a resume', async () => {
    const dir = tmp();
    const e404 = await downloadCached(`${base}/missing.pth`, { dir }).catch((e) => e);
    expect(e404.code).toBe('E_IO');
    expect(e404.message).toMatch(/HTTP 404/);
    const cut = await downloadCached(`${base}/cut.pth`, { dir }).catch((e) => e);
    expect(cut.code).toBe('E_IO');
    const cutFile = cachePathFor(`${base}/cut.pth`, { dir });
    expect(existsSync(`${cutFile}.partial`)).toBe(true);
    expect(existsSync(cutFile)).toBe(false);
    rmSync(dir, { recursive: true });
  });
});
