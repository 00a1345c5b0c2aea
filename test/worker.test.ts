// ModelWorker: the forward pass runs on a worker thread (the event loop keeps turning), gives the same
// logits as the model on the main thread, and reports errors without killing anything.
import { describe, it, expect } from 'vitest';
import * as cz from '../src/index.js';

describe('ModelWorker', () => {
  it('matches the main-thread model and keeps the event loop free', async () => {
    cz.manualSeed(11);
    const model = cz.buildModel('resnet18').eval();
    const x = cz.randn([2, 3, 96, 96]);
    const ref = cz.inferenceMode(() => model.forward(x));
    const worker = await cz.ModelWorker.create('resnet18', { threads: 1 }, model);
    try {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const outs = await Promise.all([worker.forward(x), worker.forward(x), worker.forward(x)]);
      clearInterval(timer);
      expect(ticks).toBeGreaterThan(2); // timers fired while three forwards ran
      for (const y of outs) {
        expect(y.shape).toEqual([2, 1000]);
        expect(cz.tidy(() => y.sub(ref).abs().max().item())).toBe(0);
        y.dispose();
      }
      const err = await worker.forward(cz.tidy(() => cz.randn([2, 5]))).catch((e) => e);
      expect(err).toBeInstanceOf(cz.ConvzooError);
      expect(err.code).toBe('E_SHAPE');
      expect(err.message).toMatch(/conv2d/);
      const again = await worker.forward(x);
      expect(again.shape).toEqual([2, 1000]);
      again.dispose();
    } finally {
      await worker.close();
      x.dispose();
      ref.dispose();
    }
    await expect(worker.forward(cz.zeros([1]))).rejects.toThrow(/closed/);
  });

  it('trains on the worker thread and hands back its state', async () => {
    cz.manualSeed(5);
    const worker = await cz.ModelWorker.create('resnet20', { inChans: 1, numClasses: 10, threads: 1, train: { optimizer: 'sgd', lr: 0.05, momentum: 0.9 } });
    const x = cz.randn([16, 1, 28, 28]);
    const y = cz.randint(0, 10, [16]);
    try {
      const losses: number[] = [];
      for (let i = 0; i < 15; i++) losses.push((await worker.trainStep(x, y)).loss);
      expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.7);
      const sd = await worker.stateDict();
      expect(Object.keys(sd)).toContain('layer3.2.bn2.running_var');
      const local = cz.buildModel('resnet20', { inChans: 1, numClasses: 10 });
      local.loadStateDict(sd);
      for (const t of Object.values(sd)) t.dispose();
      const mine = cz.inferenceMode(() => local.eval().forward(x));
      const theirs = await worker.forward(x);
      expect(cz.tidy(() => mine.sub(theirs).abs().max().item())).toBe(0);
      mine.dispose();
      theirs.dispose();
      local.dispose();
      const noTrain = await cz.ModelWorker.create('resnet20', { inChans: 1, numClasses: 10, threads: 1 });
      await expect(noTrain.trainStep(x, y)).rejects.toThrow(/create the worker with a `train` configuration/);
      await noTrain.close();
    } finally {
      await worker.close();
      x.dispose();
      y.dispose();
    }
  });

  it('fails clearly for an unknown model', async () => {
    await expect(cz.ModelWorker.create('resnet5')).rejects.toThrow(/unknown model 'resnet5'/);
  });
});
