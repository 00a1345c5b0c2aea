// Training end to end through the CLI on a small Fashion-MNIST folder made from Debian's files:
// checkpoints and metrics, an exact resume after SIGKILL, kills during checkpoint writes, a diverging
// loss, evaluation of a checkpoint, and the plots.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { memory } from '../src/index.js';

import { sliceFashionMnist } from './reference.js';

const CLI = path.resolve('dist/cli/main.js');
let data = '';
const tmp = (p: string) => mkdtempSync(path.join(os.tmpdir(), `cz-train-${p}-`));

const base = (out: string, extra: string[] = []) => [
  'train',
  '--model',
  'resnet20',
  '--data',
  data,
  '--epochs',
  '3',
  '--batch-size',
  '64',
  '--lr',
  '0.05',
  '--seed',
  '7',
  '--threads',
  '1',
  '--workers',
  '0',
  '--json',
  '--out',
  out,
  ...extra,
];
const run = (args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
const rows = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
const sameEpoch = (a: Record<string, number>, b: Record<string, number>) => {
  for (const k of ['epoch', 'trainLoss', 'trainAccuracy', 'testLoss', 'testAccuracy', 'lr']) expect(a[k], k).toBe(b[k]);
};

beforeAll(() => {
  data = tmp('data');
  sliceFashionMnist('train', 384, data);
  sliceFashionMnist('t10k', 128, data);
});

describe('convzoo train', () => {
  let full = '';
  it('trains, writes metrics, checkpoints and plots', () => {
    full = tmp('full');
    const r = run(base(full));
    expect(r.status, r.stderr).toBe(0);
    const m = rows(full);
    expect(m.map((x) => x.epoch)).toEqual([1, 2, 3]);
    expect(m[2].trainLoss).toBeLessThan(m[0].trainLoss);
    for (const f of ['last.ckpt', 'best.ckpt', 'curves.svg', 'curves.png', 'confusion.svg', 'confusion.png'])
      expect(existsSync(path.join(full, f)), f).toBe(true);
    // JSON lines on stdout: start, steps, epochs, done, then the summary line.
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events[0].type).toBe('start');
    expect(events.filter((e) => e.type === 'epoch')).toHaveLength(3);
  });

  it('renders the plots as real images', async () => {
    const meta = await sharp(path.join(full, 'curves.png')).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(300);
    expect(readFileSync(path.join(full, 'confusion.svg'), 'utf8')).toMatch(/<svg/);
  });

  it('resumes after SIGKILL with the same epoch results as the uninterrupted run', async () => {
    const out = tmp('killed');
    const child = spawn('node', [CLI, ...base(out)], { stdio: 'ignore' });
    // Kill as soon as the first epoch is recorded (the process is then inside epoch 2).
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (existsSync(path.join(out, 'metrics.jsonl')) && rows(out).length >= 1) {
          clearInterval(t);
          child.kill('SIGKILL');
          resolve();
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(t);
        reject(new Error('the run ended before it could be killed'));
      });
    });
    await new Promise((r) => child.on('exit', r));
    const done = rows(out).length;
    expect(done).toBeLessThan(3);
    const r = run(['train', '--resume', path.join(out, 'last.ckpt'), '--json']);
    expect(r.status, r.stderr).toBe(0);
    const resumed = rows(out);
    const reference = rows(full);
    expect(resumed).toHaveLength(3);
    for (let i = 0; i < 3; i++) sameEpoch(resumed[i], reference[i]);
  });

  it('leaves a loadable checkpoint when killed at any moment, even during a write', async () => {
    const out = tmp('kills');
    const ckpt = path.join(out, 'last.ckpt');
    let checked = 0;
    // Each run rewrites last.ckpt every epoch (about a second here); kill it at staggered moments after
    // the first checkpoint exists, so some kills land inside a write.
    for (const offset of [0, 170, 340, 510, 680, 850]) {
      const child = spawn('node', [CLI, ...base(out, ['--epochs', '40'])], { stdio: 'ignore' });
      const existed = existsSync(ckpt);
      const start = Date.now();
      while (!existed && !existsSync(ckpt) && Date.now() - start < 60_000) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, offset + (existed ? 1500 : 0)));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      const before = memory().tensors;
      const ck = await loadCheckpoint(ckpt);
      expect(ck.epoch).toBeGreaterThanOrEqual(1);
      expect(Object.keys(ck.model)).toContain('fc.weight');
      ck.dispose();
      expect(memory().tensors).toBe(before);
      checked++;
    }
    expect(checked).toBe(6);
  });

  it('stops on a non-finite loss, naming the step', () => {
    const out = tmp('nan');
    const r = run(base(out, ['--lr', '1e12', '--epochs', '2']));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/loss became (NaN|Infinity|-Infinity) at epoch \d+, step \d+/);
  });

  it('evaluates a checkpoint with the accuracy the run recorded', () => {
    const r = run(['eval', '--checkpoint', path.join(full, 'last.ckpt'), '--data', data, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.count).toBe(128);
    expect(e.top1).toBeCloseTo(rows(full)[2].testAccuracy, 10);
    expect(e.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(128);
    expect(e.perClass).toHaveLength(10);
    const ten = run(['eval', '--checkpoint', path.join(full, 'last.ckpt'), '--data', data, '--ten-crop', '24', '--json']);
    expect(ten.status, ten.stderr).toBe(0);
    expect(JSON.parse(ten.stdout).count).toBe(128);
  });

  it("trains on an image folder with the papers' augmentations, skipping a corrupt image", async () => {
    const root = tmp('folder');
    for (const [c, color] of [
      ['cats', [200, 40, 40]],
      ['dogs', [40, 40, 200]],
    ] as const) {
      mkdirSync(path.join(root, c));
      for (let i = 0; i < 6; i++) {
        await sharp({ create: { width: 40 + i, height: 48, channels: 3, background: { r: color[0], g: color[1] + i * 10, b: color[2] } } })
          .png()
          .toFile(path.join(root, c, `${i}.png`));
      }
    }
    writeFileSync(path.join(root, 'dogs', 'broken.png'), 'not a png');
    for (const augment of ['alexnet', 'vgg']) {
      const out = tmp(`folder-${augment}`);
      const r = run([
        'train',
        '--model',
        'resnet18',
        '--data',
        root,
        '--input-size',
        '32',
        '--augment',
        augment,
        '--epochs',
        '1',
        '--batch-size',
        '4',
        '--lr',
        '0.01',
        '--val-split',
        '0.34',
        '--threads',
        '1',
        '--workers',
        '1',
        '--json',
        '--out',
        out,
      ]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/broken\.png/);
      const [row] = rows(out);
      expect(row.epoch).toBe(1);
      expect(Number.isFinite(row.trainLoss)).toBe(true);
    }
  });

  it('explains a missing dataset', () => {
    const empty = tmp('empty');
    mkdirSync(path.join(empty, 'x'));
    const r = run(['train', '--model', 'resnet20', '--data', path.join(empty, 'nope'), '--epochs', '1']);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/not 'fashion-mnist' and not a folder/);
  });
});
