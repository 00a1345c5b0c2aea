// Progress of a training run: a progress bar with loss, accuracy, images/s and ETA on a terminal;
// JSON lines on a pipe (or when asked).
import cliProgress from 'cli-progress';
import type { TrainEvent } from '../train/trainer.js';

/** Shows the cursor and turns line wrap back on (what a progress bar turns off). */
export const TERMINAL_RESTORE = '\x1b[?25h\x1b[?7h';

export interface TrainReporter {
  (e: TrainEvent): void;
  /** Stops a running progress bar and restores the terminal (cursor, line wrap); safe to call any time. */
  stop(): void;
  /** Whether this reporter draws a progress bar (false: JSON lines). */
  readonly bar: boolean;
}

export function trainReporter(opts: { json?: boolean; stream?: NodeJS.WriteStream } = {}): TrainReporter {
  const stream = opts.stream ?? process.stderr;
  const json = opts.json ?? !stream.isTTY;
  if (json) {
    let lastStepLine = 0;
    const report = (e: TrainEvent): void => {
      if (e.type === 'eval') return;
      // Steps are many: one line a second at most, plus each epoch's last step.
      if (e.type === 'step') {
        const now = Date.now();
        if (now - lastStepLine < 1000 && e.step !== e.steps) return;
        lastStepLine = now;
      }
      process.stdout.write(JSON.stringify(e) + '\n');
      // Notes (a skipped image, a stale lock taken over) are for people too.
      if (e.type === 'note') stream.write(`note: ${e.message}\n`);
    };
    return Object.assign(report, { stop() {}, bar: false });
  }
  let bar: cliProgress.SingleBar | null = null;
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  const stopBar = (): void => {
    if (bar) {
      bar.stop();
      bar = null;
    }
  };
  const report = (e: TrainEvent): void => {
    switch (e.type) {
      case 'note':
        stopBar();
        stream.write(`note: ${e.message}\n`);
        break;
      case 'start':
        stream.write(
          `training ${e.model} (${(e.params / 1e6).toFixed(2)}M params) on ${e.trainSize} images, testing on ${e.testSize}; epochs ${e.startEpoch}..${e.epochs}; output in ${e.out}\n`,
        );
        break;
      case 'step':
        if (!bar) {
          bar = new cliProgress.SingleBar(
            {
              format: `epoch ${e.epoch} {bar} {value}/{total} | loss {loss} | acc {acc} | {ips} img/s | lr {lr} | ETA {eta_formatted}`,
              stream,
              hideCursor: true,
              clearOnComplete: false,
              etaBuffer: 50,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(e.steps, 0, { loss: '-', acc: '-', ips: '-', lr: '-' });
        }
        bar.update(e.step, { loss: e.loss.toFixed(4), acc: pct(e.accuracy), ips: e.imagesPerSecond.toFixed(0), lr: e.lr.toExponential(2) });
        break;
      case 'eval':
        stopBar();
        if (e.done === e.total) stream.write(`evaluated ${e.total} batch${e.total === 1 ? '' : 'es'}\r`);
        break;
      case 'epoch':
        stopBar();
        stream.write(
          `epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)} acc ${pct(e.trainAccuracy)} | test loss ${e.testLoss.toFixed(4)} top-1 ${pct(e.testAccuracy)} top-5 ${pct(e.testTop5)} | ${e.seconds.toFixed(1)} s${e.best ? ' | best' : ''}\n`,
        );
        break;
      case 'done':
        stream.write(`done in ${e.seconds.toFixed(1)} s: test accuracy ${pct(e.testAccuracy)} (best ${pct(e.bestAccuracy)}); files in ${e.out}\n`);
        break;
    }
  };
  return Object.assign(report, {
    stop() {
      stopBar();
      // cli-progress restores these on stop(), but only for a bar it still runs; say it again, cheaply.
      stream.write(TERMINAL_RESTORE);
    },
    bar: true,
  });
}
