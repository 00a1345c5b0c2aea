// Distributed training over libtorch's c10d (gloo on loopback): collectives, DistributedDataParallel with
// SyncBatchNorm against one process at the same global batch, `convzoo train --nproc 2`, the torchrun
// environment, a rank killed mid-run (the other stops with an error naming the failure, --resume and
// --max-restarts finish the run), and the errors of bad distributed options.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as cz from '../src/index.js';
import { freePort } from '../src/cli/launch.js';
import { requireFashionMnist, sliceFashionMnist } from './reference.js';

const CLI = path.resolve('dist/cli/main.js');
const WORKER = path.resolve('test/helpers/ddp_worker.mjs');

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

function run(
  args: string[],
  env: Record<string, string> = {},
  onStdout?: (chunk: string, child: ChildProcess) => void,
): { child: ChildProcess; done: Promise<Exit> } {
  const start = performance.now();
  const child = spawn('node', args, { env: { ...process.env, OMP_NUM_THREADS: '1', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
    onStdout?.(String(d), child);
  });
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr, seconds: (performance.now() - start) / 1000 })),
  );
  return { child, done };
}

/** Runs the same command as ranks 0..n-1 of a torchrun-style job. */
async function ranks(n: number, args: (rank: number) => string[]): Promise<Exit[]> {
  const port = await freePort();
  return await Promise.all(
    Array.from(
      { length: n },
      (_, rank) => run(args(rank), { RANK: String(rank), WORLD_SIZE: String(n), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) }).done,
    ),
  );
}

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!);

describe('process group and collectives', () => {
  test('allReduce (sum, avg, max), broadcast, broadcastCoalesced and barrier over 2 processes', async () => {
    const script = `
      import * as cz from ${JSON.stringify(path.resolve('dist/index.js'))};
      const { rank, worldSize } = cz.distributed.initProcessGroup({ timeoutSeconds: 30 });
      const s = cz.distributed.allReduce(cz.tensor([rank + 1, 10 * (rank + 1)]));
      const a = cz.distributed.allReduce(cz.tensor([rank + 1], undefined, { dtype: 'float32' }), 'avg');
      const m = cz.distributed.allReduce(cz.tensor([rank * 5, -rank]), 'max');
      const b = cz.distributed.broadcast(cz.tensor([rank, rank, rank]), 1);
      const c = [cz.zeros([2]).add(rank), cz.zeros([3, 2]).add(rank * 2)];
      cz.distributed.broadcastCoalesced(c, 0);
      cz.distributed.barrier();
      console.log(JSON.stringify({ rank, worldSize, s: s.toArray(), a: a.toArray(), m: m.toArray(), b: b.toArray(), c: c.map((t) => t.sum().item()) }));
      cz.distributed.destroyProcessGroup();`;
    const outs = await ranks(2, () => ['--input-type=module', '-e', script]);
    for (const o of outs) expect(o.code, o.stderr).toBe(0);
    const results = outs.map((o) => JSON.parse(o.stdout));
    for (const [rank, r] of results.entries()) {
      expect(r).toEqual({ rank, worldSize: 2, s: [3, 30], a: [1.5], m: [5, 0], b: [1, 1, 1], c: [0, 0] });
    }
  }, 60_000);

  test('bad arguments and a missing group are E_ARG; nccl is E_UNSUPPORTED; outside a group rank 0 of 1', () => {
    expect(cz.distributed.isAvailable()).toBe(true);
    expect(cz.distributed.getRank()).toBe(0);
    expect(cz.distributed.getWorldSize()).toBe(1);
    expect(() => cz.distributed.allReduce(cz.tensor([1]))).toThrow(/allReduce: no process group; call distributed.initProcessGroup\(\) first/);
    expect(() => cz.distributed.allReduce(cz.tensor([1]), 'mean' as 'avg')).toThrow(/op must be sum, avg, product, min or max, got 'mean'/);
    expect(() => cz.distributed.initProcessGroup({ backend: 'nccl', rank: 0, worldSize: 1 })).toThrow(
      expect.objectContaining({ code: 'E_UNSUPPORTED', message: expect.stringMatching(/nccl.*CUDA/) }),
    );
    expect(() => cz.distributed.initProcessGroup({ rank: 2, worldSize: 2 })).toThrow(/rank 2 is outside world size 2/);
    expect(() => cz.distributed.initProcessGroup({ rank: 0, worldSize: 1, masterPort: 70000 })).toThrow(/masterPort 70000 is above 65535/);
    expect(() => new cz.distributed.DistributedDataParallel(cz.buildModel('resnet20'))).toThrow(/no process group/);
  });

  test('a rendezvous nobody joins fails with E_DISTRIBUTED after the timeout', async () => {
    const port = await freePort();
    const script = `
      import * as cz from ${JSON.stringify(path.resolve('dist/index.js'))};
      try { cz.distributed.initProcessGroup({ rank: 0, worldSize: 2, masterPort: ${port}, timeoutSeconds: 2 }); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
    const o = await run(['--input-type=module', '-e', script]).done;
    const r = JSON.parse(o.stdout);
    expect(r.code).toBe('E_DISTRIBUTED');
    expect(r.message).toMatch(/rendezvous at 127.0.0.1:\d+ \(rank 0 of 2\) failed/);
    expect(o.seconds).toBeLessThan(20);
  }, 30_000);
});

describe('DistributedDataParallel with SyncBatchNorm', () => {
  beforeAll(() => void requireFashionMnist());

  // In float64, so that the comparison measures the method and not float32 rounding: one float32 process
  // itself drifts from the float64 run by ~3e-4 in its fifth step and ~1e-2 by the twentieth (BENCHMARKS.md).
  test('2 processes give the loss curve of 1 process at the same global batch (20 steps of resnet20 on Fashion-MNIST, float64)', async () => {
    const cfg = JSON.stringify({ steps: 20, batchSize: 128, dtype: 'float64', lr: 0.01, seed: 0 });
    const single = run([WORKER, cfg]).done;
    const [r0, r1] = await ranks(2, () => [WORKER, cfg]);
    const one = await single;
    expect(one.code, one.stderr).toBe(0);
    expect(r0.code, r0.stderr).toBe(0);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout).toBe(''); // rank 1 prints nothing
    const a = lastJson(one.stdout);
    const b = lastJson(r0.stdout);
    expect(b.losses).toHaveLength(20);
    expect(b.counts).toEqual(new Array(20).fill(128)); // the global batch: 64 from each rank
    const worst = Math.max(...a.losses.map((l: number, i: number) => Math.abs(l - b.losses[i])));
    expect(worst).toBeLessThan(1e-4);
    expect(Math.abs(a.checksum - b.checksum) / a.checksum).toBeLessThan(1e-6); // the weights after 20 updates
    expect(Math.abs(a.bnMean - b.bnMean) / a.bnMean).toBeLessThan(1e-6); // SyncBatchNorm's running statistics
    expect(b.losses[19]).toBeLessThan(b.losses[0] - 0.5); // it learned
  }, 240_000);
});

describe('convzoo train --nproc', () => {
  let data = '';
  let tmp = '';
  beforeAll(() => {
    data = mkdtempSync(path.join(os.tmpdir(), 'cz-ddp-data-'));
    tmp = mkdtempSync(path.join(os.tmpdir(), 'cz-ddp-'));
    sliceFashionMnist('train', 2048, data);
    sliceFashionMnist('t10k', 1000, data);
  });
  afterAll(() => {
    rmSync(data, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  });
  const common = () => [
    '--model',
    'resnet20',
    '--data',
    data,
    '--batch-size',
    '64',
    '--lr',
    '0.05',
    '--warmup-epochs',
    '0.5',
    '--seed',
    '2',
    '--workers',
    '0',
    '--json',
  ];
  const epochsOf = (stdout: string) =>
    stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === 'epoch');

  test('2 processes reach the accuracy of 1 on a short run; rank 0 alone writes the run folder; the test set is shared out and counted once', async () => {
    const one = run([CLI, 'train', ...common(), '--epochs', '2', '--threads', '1', '--out', path.join(tmp, 'one')]).done;
    const two = await run([CLI, 'train', ...common(), '--epochs', '2', '--nproc', '2', '--sync-bn', '--out', path.join(tmp, 'two')]).done;
    const single = await one;
    expect(single.code, single.stderr).toBe(0);
    expect(two.code, two.stderr).toBe(0);
    const e1 = epochsOf(single.stdout);
    const e2 = epochsOf(two.stdout);
    expect(e2).toHaveLength(2);
    // The first step is the same computation: same global batch, same weights (float32 differences only).
    const firstStep = (s: string) =>
      s
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .find((e) => e.type === 'step' && e.step === 1);
    expect(Math.abs(firstStep(two.stdout).loss - firstStep(single.stdout).loss)).toBeLessThan(1e-4);
    // Float32 runs drift apart after a few steps; the outcome must not.
    expect(Math.abs(e2[1].testAccuracy - e1[1].testAccuracy)).toBeLessThan(0.04);
    expect(e2[1].testAccuracy).toBeGreaterThan(0.6);
    const done = lastJson(two.stdout);
    expect(done).toMatchObject({ processes: 2, epochs: 2 });
    const files = readdirSync(path.join(tmp, 'two')).sort();
    expect(files).toEqual(expect.arrayContaining(['best.ckpt', 'last.ckpt', 'metrics.jsonl']));
    expect(
      readFileSync(path.join(tmp, 'two', 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n'),
    ).toHaveLength(2);
    // The evaluation covered the 1000 test images once: the confusion matrix of the checkpoint sums to 1000.
    const ev = spawnSync('node', [CLI, 'eval', '-c', path.join(tmp, 'two', 'last.ckpt'), '--json'], { encoding: 'utf8' });
    expect(ev.status, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout).count).toBe(1000);
    expect(JSON.parse(ev.stdout).top1).toBeCloseTo(e2[1].testAccuracy, 6);
  }, 300_000);

  test('a rank killed mid-run stops the other with an error naming the failure; --resume finishes the run', async () => {
    const out = path.join(tmp, 'killed');
    const port = await freePort();
    const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
    const args = [CLI, 'train', ...common(), '--epochs', '3', '--threads', '1', '--dist-timeout', '30', '--out', out];
    const r1 = run(args, env(1));
    let killedAt = 0;
    const r0 = run(args, env(0), (chunk) => {
      // In the second epoch (the first one's checkpoint written; step lines come at most once a second): kill rank 1.
      if (!killedAt && /"epoch":2,"step":\d+/.test(chunk)) {
        killedAt = performance.now();
        r1.child.kill('SIGKILL');
      }
    });
    const [e0, e1] = await Promise.all([r0.done, r1.done]);
    expect(killedAt).toBeGreaterThan(0);
    expect(e1.signal).toBe('SIGKILL');
    expect(e0.code).not.toBe(0);
    expect(e0.stderr).toMatch(/distributed: .* failed on rank 0 of 2 \(another rank has probably died or stopped; the timeout is 30 s\)/);
    expect((performance.now() - killedAt) / 1000).toBeLessThan(40);
    expect(epochsOf(e0.stdout)).toHaveLength(1);
    const resumed = await run([CLI, 'train', '--resume', path.join(out, 'last.ckpt'), '--nproc', '2', '--json']).done;
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(epochsOf(resumed.stdout).map((e) => e.epoch)).toEqual([2, 3]);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
  }, 300_000);

  test('--max-restarts restarts the whole job from the last checkpoint after a rank dies', async () => {
    const out = path.join(tmp, 'restarts');
    const marker = `cz-ddp-test-${process.pid}-${Date.now()}`;
    let killed = false;
    const job = run([CLI, 'train', ...common(), '--epochs', '2', '--nproc', '2', '--max-restarts', '1', '--out', out], { CZ_TEST_MARK: marker }, (chunk) => {
      if (!killed && /"epoch":2,"step":\d+/.test(chunk)) {
        killed = true;
        // Rank 1 of this job: the process whose environment carries the marker and RANK=1.
        for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
          let env = '';
          try {
            env = readFileSync(`/proc/${pid}/environ`, 'utf8');
          } catch {
            continue;
          }
          const vars = env.split('\0');
          if (vars.includes(`CZ_TEST_MARK=${marker}`) && vars.includes('RANK=1')) process.kill(Number(pid), 'SIGKILL');
        }
      }
    });
    const r = await job.done;
    expect(killed).toBe(true);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/rank 1 was killed by SIGKILL; the job stopped/);
    expect(r.stderr).toMatch(/restart 1 of 1, from .*last\.ckpt/);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    expect(existsSync(path.join(out, 'last.ckpt'))).toBe(true);
  }, 300_000);

  test('bad distributed options fail before any work', () => {
    const cli = (args: string[]) => spawnSync('node', [CLI, 'train', ...args], { encoding: 'utf8', timeout: 60_000 });
    const zero = cli(['--model', 'resnet20', '--nproc', '0']);
    expect(zero.status).toBe(2);
    expect(zero.stderr).toMatch(/--nproc/);
    const restarts = cli(['--model', 'resnet20', '--max-restarts', '2']);
    expect(restarts.status).not.toBe(0);
    expect(restarts.stderr).toMatch(/--max-restarts goes with --nproc N \(N > 1\)/);
    const odd = cli([...common(), '--batch-size', '63', '--nproc', '2', '--epochs', '1', '--out', path.join(tmp, 'odd')]);
    expect(odd.status).not.toBe(0);
    expect(odd.stderr).toMatch(/--batch-size 63 \(the global batch\) must be a multiple of the 2 processes/);
  }, 120_000);
});
