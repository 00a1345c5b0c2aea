// `convzoo train --nproc N`: starts N training processes on this machine, as torchrun does. Each is this
// CLI again with the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and
// its share of the cores; rank 0 talks to the terminal, the others' stderr comes through prefixed. When
// one fails, the others are stopped (they notice a dead peer themselves within the group's timeout; this
// is the backstop) and the failure names the rank; --max-restarts restarts the whole job from the last
// checkpoint, as torchrun's elastic mode does.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ConvzooError } from '../errors.js';

export interface LaunchOptions {
  nproc: number;
  /** The train command's own arguments (after `train`), without --nproc and --max-restarts. */
  args: string[];
  maxRestarts: number;
  /** Where the run's checkpoints go (a restart resumes from its last.ckpt). */
  out: string;
  /** Seconds the other ranks get to stop on their own after one failed. */
  graceSeconds: number;
  /** libtorch threads per process (default: the cores shared out). */
  threads?: number;
  log: (line: string) => void;
}

/** A free TCP port on loopback for the rendezvous. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** args without `name value` / `name=value` (each flag of `names`). */
export function withoutFlags(args: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (names.includes(a)) {
      i++;
      continue;
    }
    if (names.some((n) => a.startsWith(`${n}=`))) continue;
    out.push(a);
  }
  return out;
}

interface RankExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

const describe = (e: RankExit): string => (e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`);

/** Runs the job to the end (restarting it up to maxRestarts times); resolves with the exit code for the CLI. */
export async function launch(o: LaunchOptions): Promise<number> {
  const threads = o.threads ?? Math.max(1, Math.floor(os.availableParallelism() / o.nproc));
  let args = withoutFlags(o.args, ['--threads']);
  let stopping: NodeJS.Signals | null = null;
  let children: ChildProcess[] = [];
  const onSignal = (signal: NodeJS.Signals): void => {
    stopping = signal;
    for (const c of children) c.kill(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const first = await runOnce(o, args, threads, port, (cs) => (children = cs));
      if (stopping) return stopping === 'SIGINT' ? 130 : 143;
      if (!first) return 0;
      o.log(`convzoo train: rank ${first.rank} ${describe(first)}; the job stopped`);
      if (attempt >= o.maxRestarts) {
        if (o.maxRestarts > 0) o.log(`convzoo train: no restarts left (--max-restarts ${o.maxRestarts})`);
        return first.code && first.code > 0 ? first.code : 1;
      }
      const ckpt = path.join(o.out, 'last.ckpt');
      args = withoutFlags(args, ['--resume']);
      if (existsSync(ckpt)) args = [...args, '--resume', ckpt];
      o.log(`convzoo train: restart ${attempt + 1} of ${o.maxRestarts}, ${existsSync(ckpt) ? `from ${ckpt}` : 'from the start (no checkpoint yet)'}`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** One attempt: all ranks to the end. Resolves with the first rank that failed, or null when all succeeded. */
async function runOnce(o: LaunchOptions, args: string[], threads: number, port: number, track: (cs: ChildProcess[]) => void): Promise<RankExit | null> {
  const cli = process.argv[1];
  if (!cli) throw new ConvzooError('convzoo train --nproc: cannot find the CLI script to start the processes with', 'E_ARG');
  let firstFailure: RankExit | null = null;
  let graceTimer: NodeJS.Timeout | undefined;
  const children: ChildProcess[] = [];
  const exits = Array.from({ length: o.nproc }, (_, rank) => {
    const env = {
      ...process.env,
      RANK: String(rank),
      LOCAL_RANK: String(rank),
      WORLD_SIZE: String(o.nproc),
      LOCAL_WORLD_SIZE: String(o.nproc),
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port),
      OMP_NUM_THREADS: String(threads),
    };
    const child = spawn(process.execPath, [...process.execArgv, cli, 'train', ...args, '--threads', String(threads)], {
      env,
      stdio: rank === 0 ? 'inherit' : ['ignore', 'ignore', 'pipe'],
    });
    if (child.stderr) {
      const lines = createInterface({ input: child.stderr });
      lines.on('line', (line) => o.log(`[rank ${rank}] ${line}`));
    }
    children.push(child);
    return new Promise<RankExit>((resolve) => {
      child.on('exit', (code, signal) => {
        const e = { rank, code, signal };
        if ((code !== 0 || signal) && !firstFailure) {
          firstFailure = e;
          // The others stop on their own when a collective fails; those that do not within the grace are stopped.
          graceTimer = setTimeout(() => {
            for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
            setTimeout(() => {
              for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
            }, 5000).unref();
          }, o.graceSeconds * 1000);
          graceTimer.unref();
        }
        resolve(e);
      });
      child.on('error', (err) => {
        const e = { rank, code: 1, signal: null };
        o.log(`[rank ${rank}] could not start: ${err.message}`);
        if (!firstFailure) firstFailure = e;
        resolve(e);
      });
    });
  });
  track(children);
  await Promise.all(exits);
  if (graceTimer) clearTimeout(graceTimer);
  return firstFailure;
}
