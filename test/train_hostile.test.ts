// Training against hostile or mistaken input: crafted checkpoints (resume must not write elsewhere or
// fetch), a run's output folder used twice (lock), Ctrl-C on a terminal, eval of a folder run, bad
// options and bad data folders (errors before any training), metric names, and the checkpoint reader
// that createModel uses. Tiny data, resnet20, one epoch.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ConvzooError } from '../src/errors.js';
import { train } from '../src/train/trainer.js';
import { readCheckpointMeta, isCheckpointFile, loadCheckpoint } from '../src/train/checkpoint.js';
import { trainReporter, TERMINAL_RESTORE } from '../src/cli/report.js';
import { createModel } from '../src/models/builder.js';
import { loadWithMetadata, save } from '../src/io/index.js';
import { memory, zeros } from '../src/index.js';

import { sliceFashionMnist } from './reference.js';

const CLI = path.resolve('dist/cli/main.js');
const tmp = (p: string) => mkdtempSync(path.join(os.tmpdir(), `cz-hostile-${p}-`));
let data = '';
let run1 = ''; // one finished epoch of resnet20 on `data`
let run1Stdout = '';

const trainArgs = (out: string, extra: string[] = []) => [
  'train',
  '--model',
  'resnet20',
  '--data',
  data,
  '--epochs',
  '1',
  '--batch-size',
  '32',
  '--lr',
  '0.05',
  '--seed',
  '3',
  '--threads',
  '1',
  '--workers',
  '0',
  '--json',
  '--out',
  out,
  ...extra,
];
const cli = (args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
/** The CLI without blocking this process's event loop (so that a test server can answer meanwhile). */
function cliAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('node', [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
const rows = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
const until = async (cond: () => boolean, ms = 60_000) => {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Rewrites a checkpoint's info JSON (the tensors stay as they are). */
async function craft(src: string, dst: string, edit: (info: Record<string, any>) => void) {
  const { tensors, metadata } = await loadWithMetadata(src);
  const info = JSON.parse(metadata.info);
  edit(info);
  await save(dst, tensors, { ...metadata, info: JSON.stringify(info) });
  for (const t of Object.values(tensors)) t.dispose();
}

async function imageFolder(root: string, classes: string[], perClass: number) {
  for (const [k, c] of classes.entries()) {
    mkdirSync(path.join(root, c), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      await sharp({ create: { width: 36, height: 36, channels: 3, background: { r: 60 * k, g: 20 * i, b: 200 - 60 * k } } })
        .png()
        .toFile(path.join(root, c, `${i}.png`));
    }
  }
}

beforeAll(() => {
  data = tmp('data');
  sliceFashionMnist('train', 128, data);
  sliceFashionMnist('t10k', 64, data);
  run1 = tmp('run1');
  const r = cli(trainArgs(run1));
  expect(r.status, r.stderr).toBe(0);
  run1Stdout = r.stdout;
});

describe('resume trusts nothing in the checkpoint', () => {
  let server: Server;
  let requests = 0;
  let port = 0;
  beforeAll(async () => {
    server = createServer((_req, res) => {
      requests++;
      res.statusCode = 404;
      res.end();
    });
    server.on('connection', () => {
      requests++;
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('ignores a crafted out folder and weights URL; writes beside the checkpoint; reads old metric names', async () => {
    const elsewhere = path.join(os.tmpdir(), `cz-hostile-elsewhere-${process.pid}-${Date.now()}`);
    const dir = tmp('crafted');
    await craft(path.join(run1, 'last.ckpt'), path.join(dir, 'last.ckpt'), (info) => {
      info.options.out = elsewhere;
      info.options.weights = `http://127.0.0.1:${port}/x.pth`;
      // An older run's metric names.
      info.history = info.history.map(({ testLoss, testAccuracy, ...h }: Record<string, number>) => ({ ...h, valLoss: testLoss, valAccuracy: testAccuracy }));
    });
    const r = await cliAsync(['train', '--resume', path.join(dir, 'last.ckpt'), '--epochs', '2', '--json']);
    await new Promise((res) => setTimeout(res, 200));
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(elsewhere)).toBe(false);
    expect(requests).toBe(0);
    const m = rows(dir);
    expect(m.map((x) => x.epoch)).toEqual([1, 2]);
    expect(m[0].testAccuracy).toBe(rows(run1)[0].testAccuracy);
    expect(m[0]).not.toHaveProperty('valAccuracy');
    expect(existsSync(path.join(dir, '.lock'))).toBe(false);
  });

  it('writes a resumed copy into the folder asked for, not the original', async () => {
    const before = readFileSync(path.join(run1, 'metrics.jsonl'), 'utf8');
    // By default, the copy's own folder.
    const copy = tmp('copy');
    cpSync(run1, copy, { recursive: true });
    const r = cli(['train', '--resume', path.join(copy, 'last.ckpt'), '--epochs', '2', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(rows(copy).map((x) => x.epoch)).toEqual([1, 2]);
    expect(readFileSync(path.join(run1, 'metrics.jsonl'), 'utf8')).toBe(before);
    // With --out, that folder.
    const copy2 = tmp('copy2');
    cpSync(run1, copy2, { recursive: true });
    const elsewhere = tmp('resumed-out');
    const o = cli(['train', '--resume', path.join(copy2, 'last.ckpt'), '--epochs', '2', '--out', elsewhere, '--json']);
    expect(o.status, o.stderr).toBe(0);
    expect(rows(elsewhere).map((x) => x.epoch)).toEqual([1, 2]);
    expect(rows(copy2)).toHaveLength(1);
    expect(readFileSync(path.join(run1, 'metrics.jsonl'), 'utf8')).toBe(before);
  });

  it('validates the options stored in a checkpoint like command-line input', async () => {
    const dir = tmp('crafted-opts');
    await craft(path.join(run1, 'last.ckpt'), path.join(dir, 'last.ckpt'), (info) => {
      info.options.numWorkers = 100000;
    });
    const r = cli(['train', '--resume', path.join(dir, 'last.ckpt'), '--epochs', '2', '--json']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/holds an invalid option: numWorkers/);
    await craft(path.join(run1, 'last.ckpt'), path.join(dir, 'bad-data.ckpt'), (info) => {
      info.options.data = path.join(dir, 'nope');
    });
    const d = cli(['train', '--resume', path.join(dir, 'bad-data.ckpt'), '--epochs', '2', '--json']);
    expect(d.status).toBe(3);
    expect(d.stderr).toMatch(/not 'fashion-mnist' and not a folder/);
    expect(existsSync(path.join(dir, 'metrics.jsonl'))).toBe(false);
  });
});

describe('one run per output folder', () => {
  it('refuses a folder another live process holds, naming it and the pid', () => {
    const out = tmp('locked');
    writeFileSync(path.join(out, '.lock'), JSON.stringify({ pid: process.pid, hostname: os.hostname() }));
    const r = cli(trainArgs(out));
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(out);
    expect(r.stderr).toContain(`process ${process.pid}`);
    expect(existsSync(path.join(out, 'metrics.jsonl'))).toBe(false);
  });

  it('does not take a lock copied with a run for its own', () => {
    const out = tmp('copied-lock');
    writeFileSync(path.join(out, '.lock'), JSON.stringify({ pid: process.pid, hostname: os.hostname(), dir: path.join(os.tmpdir(), 'the-original') }));
    const r = cli(trainArgs(out));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/"type":"note".*copied from/);
  });

  it('takes over a lock whose process is gone, with a note, and releases it', () => {
    const out = tmp('stale');
    const dead = spawnSync('node', ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(path.join(out, '.lock'), JSON.stringify({ pid: Number(dead.stdout), hostname: os.hostname() }));
    const r = cli(trainArgs(out));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/"type":"note".*no longer running/);
    expect(existsSync(path.join(out, '.lock'))).toBe(false);
  });

  it('a second run on the folder of a running one fails at once; Ctrl-C on a terminal restores it and says how to continue', async () => {
    const out = tmp('sigint');
    // A pseudo-terminal (util-linux script), so the CLI draws its progress bar.
    const cmd = ['node', CLI, ...trainArgs(out, ['--epochs', '200'])]
      .filter((a) => a !== '--json')
      .map((a) => `'${a}'`)
      .join(' ');
    const child = spawn('script', ['-qefc', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    const exited = new Promise<number | null>((r) => child.on('close', r));
    await until(() => /epoch 1: train loss/.test(output) && /epoch 2 /.test(output.slice(output.indexOf('epoch 1: train loss'))));
    const second = cli(trainArgs(out));
    const lock = JSON.parse(readFileSync(path.join(out, '.lock'), 'utf8'));
    expect(second.status).toBe(3);
    expect(second.stderr).toContain(`in use by process ${lock.pid}`);
    child.stdin.write('\x03'); // Ctrl-C, through the terminal
    const status = await exited;
    const shown = output.slice(-600).replace(/\x1b/g, '<ESC>');
    expect(status, shown).toBe(130);
    expect(output).toContain('\x1b[?25l'); // the bar did hide the cursor
    const tail = output.slice(output.lastIndexOf('\x1b[?25l'));
    expect(tail).toContain('\x1b[?25h');
    expect(tail).toContain('\x1b[?7h');
    expect(output, shown).toContain(`interrupted; continue with: convzoo train --resume ${path.join(out, 'last.ckpt')}`);
    expect(existsSync(path.join(out, '.lock'))).toBe(false);
    expect(
      readdirSync(out).filter((f) => f.endsWith('.tmp')),
      shown,
    ).toEqual([]);
  });

  it('says there is no checkpoint yet when interrupted in the first epoch', async () => {
    const out = tmp('sigint-early');
    const child = spawn('node', [CLI, ...trainArgs(out, ['--epochs', '5'])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((r) => child.on('close', r));
    await until(() => existsSync(path.join(out, '.lock')));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/interrupted; no checkpoint yet/);
    expect(existsSync(path.join(out, '.lock'))).toBe(false);
  });

  it('the bar reporter restores the terminal when stopped mid-bar', () => {
    let written = '';
    const stream = Object.assign(Object.create(process.stderr), {
      isTTY: true,
      columns: 100,
      write: (s: string) => {
        written += s;
        return true;
      },
      cursorTo: () => true,
      clearLine: () => true,
      moveCursor: () => true,
      on: () => stream,
      removeListener: () => stream,
    }) as NodeJS.WriteStream;
    const report = trainReporter({ stream });
    report({ type: 'step', epoch: 1, step: 1, steps: 10, loss: 1, accuracy: 0.5, imagesPerSecond: 10, etaSeconds: 1, lr: 0.1 });
    report.stop();
    expect(written.endsWith(TERMINAL_RESTORE)).toBe(true);
  });
});

describe('eval of a checkpoint', () => {
  let folder = '';
  let folderRun = '';
  beforeAll(async () => {
    folder = tmp('eval-folder');
    await imageFolder(folder, ['cats', 'dogs'], 6);
    folderRun = tmp('eval-run');
    const r = cli([
      'train',
      '--model',
      'resnet20',
      '--data',
      folder,
      '--input-size',
      '16',
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
      '0',
      '--json',
      '--out',
      folderRun,
    ]);
    expect(r.status, r.stderr).toBe(0);
  });

  it("evaluates on the run's own folder and held-out split by default", () => {
    const r = cli(['eval', '--checkpoint', path.join(folderRun, 'last.ckpt'), '--json']);
    expect(r.status, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.classes).toEqual(['cats', 'dogs']);
    expect(e.count).toBe(4); // round(0.34 * 6) of each class
    expect(e.top1).toBeCloseTo(rows(folderRun)[0].testAccuracy, 10);
  });

  it('refuses data whose classes differ, naming both lists', async () => {
    const other = tmp('eval-other');
    await imageFolder(other, ['birds', 'cats'], 3);
    const r = cli(['eval', '--checkpoint', path.join(folderRun, 'last.ckpt'), '--data', other, '--json']);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/'cats', 'dogs'/);
    expect(r.stderr).toMatch(/'birds', 'cats'/);
    expect(r.stderr).toMatch(/class 0 is 'cats' vs 'birds'/);
    const fm = cli(['eval', '--checkpoint', path.join(folderRun, 'last.ckpt'), '--data', data, '--json']);
    expect(fm.status).toBe(3);
    expect(fm.stderr).toMatch(/does not have the classes/);
  });
});

describe('bad options and data fail before any training', () => {
  it('rejects out-of-range options on the command line with one line, no stack trace', () => {
    // (The library test below covers every option; these are the parsers.)
    for (const [flag, value] of [
      ['--input-size', 'abc'],
      ['--epochs', '-1'],
      ['--subset', '0'],
      ['--lr', 'nan'],
      ['--val-split', '1'],
    ]) {
      const out = path.join(tmp('badopt'), 'run');
      const r = cli(trainArgs(out, [flag, value]));
      expect(r.status, `${flag} ${value}`).toBe(2);
      expect(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('(add --help')),
        `${flag} ${value}`,
      ).toHaveLength(1);
      expect(r.stderr).toContain(flag);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('rejects out-of-range options in the library, before creating anything', async () => {
    const bad: Record<string, unknown>[] = [
      { epochs: 0 },
      { epochs: 1.5 },
      { batchSize: 0 },
      { lr: 0 },
      { lr: Infinity },
      { momentum: 1 },
      { weightDecay: -1 },
      { warmupEpochs: -1 },
      { labelSmoothing: 1 },
      { valSplit: 1 },
      { subset: 0 },
      { numWorkers: -1 },
      { threads: 0 },
      { seed: 0.5 },
      { inputSize: 2 },
      { optimizer: 'nope' },
      { schedule: 'nope' },
      { augment: 'nope' },
    ];
    for (const b of bad) {
      const out = path.join(tmp('badlib'), 'run');
      const e = await train({ model: 'resnet20', data, out, ...b }).catch((err) => err);
      expect(e, JSON.stringify(b)).toBeInstanceOf(ConvzooError);
      expect(e.code, JSON.stringify(b)).toBe('E_ARG');
      expect(e.message).toContain(Object.keys(b)[0]);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('refuses a folder where no image decodes, a single class, and an empty test split', async () => {
    const corrupt = tmp('corrupt');
    for (const c of ['a', 'b']) {
      mkdirSync(path.join(corrupt, c));
      for (let i = 0; i < 3; i++) writeFileSync(path.join(corrupt, c, `${i}.png`), 'not a png');
    }
    const folderArgs = (root: string, out: string, extra: string[] = []) => [
      'train',
      '--model',
      'resnet20',
      '--data',
      root,
      '--input-size',
      '16',
      '--epochs',
      '1',
      '--batch-size',
      '2',
      '--threads',
      '1',
      '--workers',
      '0',
      '--json',
      '--out',
      out,
      ...extra,
    ];
    let out = tmp('corrupt-out');
    let r = cli(folderArgs(corrupt, out));
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/none of the 6 images in .* could be decoded/);
    expect(existsSync(path.join(out, 'last.ckpt'))).toBe(false);

    const one = tmp('one-class');
    await imageFolder(one, ['only'], 4);
    out = tmp('one-out');
    r = cli(folderArgs(one, out));
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/only one class \('only'\)/);

    const small = tmp('small');
    await imageFolder(small, ['x', 'y'], 2);
    out = tmp('small-out');
    r = cli(folderArgs(small, out, ['--val-split', '0.2']));
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/test split is empty/);
    expect(existsSync(path.join(out, 'metrics.jsonl'))).toBe(false);
  });
});

describe('metric names, summaries and the checkpoint reader', () => {
  it('metrics.jsonl rows and epoch events use the same names', () => {
    const [row] = rows(run1);
    const event = run1Stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((e) => e.type === 'epoch');
    for (const k of ['testLoss', 'testAccuracy', 'testTop5', 'trainLoss', 'trainAccuracy', 'lr']) {
      expect(row, k).toHaveProperty(k);
      expect(event[k], k).toBe(row[k]);
    }
    expect(row).not.toHaveProperty('valLoss');
  });

  it('the demo says "after 1 epoch"', () => {
    const out = tmp('demo');
    const r = cli(['demo', '--epochs', '1', '--subset', '64', '--threads', '2', '--json', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/after 1 epoch in/);
  });

  it('readCheckpointMeta describes a checkpoint from its header; createModel loads its model; isCheckpointFile tells checkpoints apart', async () => {
    const before = memory().tensors;
    const best = path.join(run1, 'best.ckpt');
    const info = await readCheckpointMeta(best);
    expect(info.modelId).toBe('resnet20');
    expect(info.classes).toHaveLength(10);
    expect(info.inChans).toBe(1);
    expect(info.epoch).toBe(1);
    expect(info.options).not.toHaveProperty('out');
    expect(info.options).not.toHaveProperty('weights');
    expect(info.modelOptions).toEqual({});
    expect(memory().tensors).toBe(before); // the header only
    const model = await createModel(info.modelId, { weights: best });
    const full = await loadCheckpoint(best);
    for (const [k, t] of Object.entries(model.stateDict())) {
      expect(t.toArray(), k).toEqual(full.model[k].toArray());
      t.dispose();
    }
    full.dispose();
    model.dispose();

    const last = await loadCheckpoint(path.join(run1, 'last.ckpt'));
    expect(Object.keys(last.optimizer!.state).length).toBeGreaterThan(0);
    last.dispose();

    expect(await isCheckpointFile(path.join(run1, 'best.ckpt'))).toBe(true);
    const plain = path.join(tmp('plain'), 'w.safetensors');
    const z = zeros([2]);
    await save(plain, { w: z });
    z.dispose();
    expect(await isCheckpointFile(plain)).toBe(false);
    expect(await isCheckpointFile(path.join(run1, 'metrics.jsonl'))).toBe(false);
    expect(await isCheckpointFile(path.join(run1, 'missing.ckpt'))).toBe(false);
    await expect(readCheckpointMeta(plain)).rejects.toMatchObject({ code: 'E_FORMAT' });
    await expect(readCheckpointMeta(path.join(run1, 'missing.ckpt'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    expect(memory().tensors).toBe(before);
  });
});
