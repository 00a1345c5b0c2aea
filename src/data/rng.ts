// A small seeded random number generator for augmentation and shuffling. It is plain JS (no libtorch),
// so worker threads draw exactly the same numbers as the main thread: each sample's generator is
// seeded from (seed, epoch, sample index), never from shared state, so results do not depend on
// which worker handles which batch.

/** splitmix32-style finaliser: a bijective 32-bit mix with good avalanche. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad);
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * Hashes a list of non-negative integers (seeds, epochs, indices; up to 2^53) into one 32-bit seed.
 * Different lists give unrelated seeds: `mixSeed(s, e, i)` for a sample, `mixSeed(s, e, -1)` for an
 * epoch's shuffle.
 */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = fmix32((h + Math.imul(lo ^ 0x85ebca6b, 0x9e3779b1)) >>> 0);
    h = fmix32((h + Math.imul(hi ^ 0xc2b2ae35, 0x9e3779b1)) >>> 0);
  }
  return h;
}

/** xoshiro128** seeded through splitmix32: fast, 128-bit state, passes BigCrush. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      return fmix32(s);
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform on [0, 1) with 32 bits of resolution. */
  random(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform on [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.random();
  }

  /** An integer uniform on [low, high) (like torch.randint's bounds). */
  randint(low: number, high: number): number {
    const span = high - low;
    if (span <= 1) return low;
    return low + Math.floor(this.random() * span);
  }

  /** Normal with the given mean and standard deviation (Box-Muller, the second draw kept). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.random() < p;
  }

  /** Shuffles `arr` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    return arr;
  }

  /** 0..n-1 in a random order. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
