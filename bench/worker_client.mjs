// What the benchmarks share: a long-lived worker process spoken to in lines (one request in, one JSON
// line out), and the median.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * Starts `cmd args` and returns {hello, ask, stop}: `hello` is the worker's first JSON line, `ask(line)`
 * sends one request line and resolves to the next JSON line, `stop(line)` sends a last line and closes stdin.
 */
export function lineWorker(side, cmd, args, env) {
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error(`${side} worker exited early`);
    return JSON.parse(r.value);
  };
  return {
    hello: next(),
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
