// One training run per output folder: `<out>/.lock`, created exclusively, holds the owner's pid and
// host. A second run on the folder fails at once, naming the owner; a lock left by a process that is
// gone (killed with SIGKILL, a crash) is taken over with a note. The lock goes when the run ends, by
// success, error, or process exit (a signal handler that calls process.exit included).
import { closeSync, openSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeSync, linkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConvzooError } from '../errors.js';

export const LOCK_FILE = '.lock';

export interface RunLock {
  readonly file: string;
  /** Removes the lock (once; later calls do nothing). */
  release(): void;
}

interface LockOwner {
  pid: number;
  hostname: string;
  started?: string;
  dir?: string;
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(file, 'utf8')) as LockOwner;
    return Number.isInteger(o.pid) && typeof o.hostname === 'string' ? o : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function youngerThan(file: string, ms: number): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs < ms;
  } catch {
    return false;
  }
}

function tryCreate(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new ConvzooError(`train: cannot create the lock ${file}: ${(e as Error).message}`, 'E_IO', 'train');
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Takes the lock of output folder `dir` (which must exist). Throws E_IO when another live process
 * holds it; `onNote` hears about a stale lock taken over.
 */
export function acquireRunLock(dir: string, onNote: (message: string) => void = () => {}): RunLock {
  const file = path.join(dir, LOCK_FILE);
  const real = realpathSync(dir);
  const me: LockOwner = { pid: process.pid, hostname: os.hostname(), started: new Date().toISOString(), dir: real };
  const content = JSON.stringify(me) + '\n';
  for (let attempt = 0; ; attempt++) {
    if (tryCreate(file, content)) break;
    const owner = readOwner(file);
    const sameHost = owner?.hostname === me.hostname;
    // A lock copied along with a run's folder names the folder it was taken in: not this one's. (Only
    // on one host: a shared file system may be mounted at other paths elsewhere.)
    const copied = sameHost && typeof owner?.dir === 'string' && owner.dir !== real;
    if (owner && !copied && (!sameHost || isAlive(owner.pid))) {
      const who = sameHost ? `process ${owner.pid}` : `process ${owner.pid} on host ${owner.hostname}`;
      throw new ConvzooError(
        `train: the output folder ${dir} is in use by ${who}${owner.started ? ` (since ${owner.started})` : ''}; ` +
          `wait for it, or give another --out${sameHost ? '' : `, or delete ${file} if that run is gone`}`,
        'E_IO',
        'train',
      );
    }
    if (!owner && attempt < 40 && youngerThan(file, 2000)) {
      // Unreadable but fresh: another run between creating it and writing its pid. Look again shortly.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
      continue;
    }
    if (attempt >= 45) throw new ConvzooError(`train: cannot take the lock ${file} (it keeps changing); is another run starting on ${dir}?`, 'E_IO', 'train');
    // Stale (its process is gone) or unreadable: move it aside under a private name, so that of two
    // runs taking over at once only one succeeds; if what was moved is not what was judged stale,
    // put it back.
    const aside = `${file}.stale.${process.pid}`;
    try {
      renameSync(file, aside);
    } catch {
      continue; // someone else moved it first
    }
    const moved = readOwner(aside);
    if (owner && moved && (moved.pid !== owner.pid || moved.hostname !== owner.hostname)) {
      try {
        linkSync(aside, file);
      } catch {
        /* a third run holds it now */
      }
      try {
        unlinkSync(aside);
      } catch {
        /* gone */
      }
      continue;
    }
    try {
      unlinkSync(aside);
    } catch {
      /* gone */
    }
    onNote(
      !owner
        ? `replaced an unreadable lock file in ${dir}`
        : copied
          ? `replaced a lock file copied from ${owner.dir} into ${dir}`
          : `took over the lock of ${dir} left by process ${owner.pid}, which is no longer running`,
    );
  }
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    // Only our own lock: never a lock another run took over after ours was removed by hand.
    if (readOwner(file)?.pid === me.pid) {
      try {
        unlinkSync(file);
      } catch {
        /* already gone */
      }
    }
  };
  process.on('exit', release);
  return { file, release };
}
