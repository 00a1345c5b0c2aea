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
      x.dispose(); ref.dispose();
    }
    await expect(worker.forward(cz.zeros([1]))).rejects.toThrow(/closed/);
  });

  it('fails clearly for an unknown model', async () => {
    await expect(cz.ModelWorker.create('resnet5')).rejects.toThrow(/unknown model 'resnet5'/);
  });
});
