// Every test starts after a full garbage collection. Tensor handles that earlier tests dropped without
// dispose() are freed by the collector (the addon's finalizers run during GC itself), so without this a
// collection in the middle of a test would change the live-tensor counts that the leak checks compare.
import { beforeEach } from 'vitest';

const gc = (globalThis as { gc?: () => void }).gc;
beforeEach(() => {
  gc?.();
});
