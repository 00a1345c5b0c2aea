// PIL's resampling weights and torchvision's resize geometry as plain functions (no tensors, no
// Node): the library's resize (resample.ts, sums in libtorch) and the web page's (web/preprocess.ts,
// sums in JavaScript) both use them, so the page's input is the library's, value for value.

export type ResampleFilter = 'nearest' | 'box' | 'bilinear' | 'hamming' | 'bicubic' | 'lanczos';

interface Filter {
  support: number;
  fn: (x: number) => number;
}
const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(x * Math.PI) / (x * Math.PI));
// Resample.c's filters, same constants.
const FILTERS: Record<Exclude<ResampleFilter, 'nearest'>, Filter> = {
  box: { support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: {
    support: 1,
    fn: (x) => {
      x = Math.abs(x);
      return x < 1 ? 1 - x : 0;
    },
  },
  hamming: {
    support: 1,
    fn: (x) => {
      x = Math.abs(x);
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      return (Math.sin(x) / x) * (0.54 + 0.46 * Math.cos(x));
    },
  },
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, fn: (x) => (x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

export const RESAMPLE_FILTERS: readonly ResampleFilter[] = ['nearest', 'box', 'bilinear', 'hamming', 'bicubic', 'lanczos'];

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

/** One axis' weights: output i takes source pixels [start[i], start[i] + count[i]) with weights k[i * ksize + j]. */
export interface AxisCoefficients {
  start: Int32Array;
  count: Int32Array;
  k: Float64Array;
  ksize: number;
}

/**
 * PIL's precompute_coeffs + normalize_coeffs_8bpc: the weights, already quantised to multiples of
 * 2^-22 (`quantise` false keeps PIL's double weights, as its 32-bit float path uses them).
 */
export function pilCoefficients(inSize: number, outSize: number, filter: Exclude<ResampleFilter, 'nearest'>, quantise = true): AxisCoefficients {
  const f = FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = f.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    const o = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const w = f.fn((x + xmin - center + 0.5) * ss);
      k[o + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      if (ww !== 0) k[o + x] /= ww;
      // C's (int) truncates toward zero: PIL rounds half away from zero this way.
      if (quantise) k[o + x] = Math.trunc(k[o + x] < 0 ? -0.5 + k[o + x] * ONE : 0.5 + k[o + x] * ONE) / ONE;
    }
    start[xx] = xmin;
    count[xx] = Math.max(xmax, 0);
  }
  return { start, count, k, ksize };
}

/** Python's round(): halves go to the even neighbour (torchvision's center crop rounds this way). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision's Resize(size) of the shorter side: the longer side is int(size * long / short). */
export function resizedSize(height: number, width: number, size: number): [number, number] {
  const short = Math.min(height, width),
    long = Math.max(height, width);
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? [newLong, size] : [size, newLong];
}
