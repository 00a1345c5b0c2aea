// What the benchmarks share: a long-lived worker process spoken to in lines (one request in, one JSON
// line out), and the median.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * Starts `cmd args` and returns {hello, ask, stop, exited}: `hello` is the worker's first JSON line, `ask(line)`
 * sends one request line and resolves to the next JSON line, `stop(line)` sends a last line and closes stdin,
 * `exited()` tells whether the process has ended.
 */
export function lineWorker(side, cmd, args, env) {
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const ended = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let exited = false;
  ended.then(() => {
    exited = true;
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) {
      const { code, signal } = await ended;
      // SIGKILL with no one asking is, on these machines, the kernel's out-of-memory killer.
      const how = signal ? `killed by ${signal}${signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `exit code ${code}`;
      throw new Error(`${side} worker exited early: ${how}`);
    }
    return JSON.parse(r.value);
  };
  child.stdin.on('error', () => {}); // a write to a dead worker: next() reports how it ended
  return {
    hello: next(),
    exited: () => exited,
    ask: (line) => {
      child.stdin.write(line + '\n');
      return next();
    },
    stop: (line) => {
      child.stdin.end(line + '\n');
    },
  };
}

export const median = (xs) => {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
