// PIL's Image.resize on 8-bit images, reproduced bit for bit with libtorch doing the arithmetic.
//
// PIL (Resample.c) resizes in two separable passes, horizontal first, each rounded to uint8. Each
// output pixel is a weighted sum of a window of source pixels; the weights come from the filter
// (triangle for bilinear, ...) widened by the scale when shrinking (that is the antialiasing), are
// normalised to sum 1, then quantised to 22-bit fixed point. Here the weight tables are computed
// exactly as PIL computes them (double precision, same rounding), and the sums are libtorch matmuls
// in float64 over bands of the image: every term is an integer multiple of 2^-22 below 2^10, so
// float64 sums them exactly and floor(sum + 0.5) clamped to [0, 255] is PIL's result exactly.
import { check } from '../errors.js';
import { fromBytes, cat } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import * as F from '../nn/functional.js';

import { pilCoefficients, RESAMPLE_FILTERS, type AxisCoefficients, type ResampleFilter } from './pil.js';

export { pilCoefficients, RESAMPLE_FILTERS, type AxisCoefficients, type ResampleFilter } from './pil.js';

/** The source range [lo, hi) that outputs [o0, o1) read. */
function sourceRange(c: AxisCoefficients, o0: number, o1: number): [number, number] {
  let lo = Infinity,
    hi = -Infinity;
  for (let o = o0; o < o1; o++) {
    lo = Math.min(lo, c.start[o]);
    hi = Math.max(hi, c.start[o] + c.count[o]);
  }
  return [lo, hi];
}

/**
 * Output pixels per matmul: at most 64, and fewer when the float64 band of source pixels they read
 * (about outputs * scale lines) would pass 16 MB, so that a large photo is never copied whole to float64.
 */
function chunkSize(lineBytes: number, scale: number): number {
  return Math.max(4, Math.min(64, Math.floor(16e6 / (lineBytes * Math.max(scale, 1)))));
}

/**
 * Resamples `x` (C x H x W, any real dtype holding 0..255 values) along `dim` (1: rows, 2: columns)
 * to `outSize`, returning only outputs [o0, o1) as float64, rounded and clamped like PIL's uint8 pass.
 * `offset` is the source index of x's first element along `dim` (x may be a band of the image).
 */
function pass(
  x: Tensor,
  dim: 1 | 2,
  inSize: number,
  outSize: number,
  filter: Exclude<ResampleFilter, 'nearest'>,
  o0: number,
  o1: number,
  offset: number,
): Tensor {
  const c = pilCoefficients(inSize, outSize, filter);
  const parts: Tensor[] = [];
  const chunk = chunkSize((x.numel() / x.shape[dim]) * 8, inSize / outSize);
  for (let a = o0; a < o1; a += chunk) {
    const b = Math.min(a + chunk, o1);
    const [lo, hi] = sourceRange(c, a, b);
    const span = hi - lo,
      n = b - a;
    // Columns: x[..., lo:hi] (span) @ M (span x n); rows: M' (n x span) @ x[:, lo:hi, :].
    const m = new Float64Array(span * n);
    for (let o = a; o < b; o++) {
      for (let j = 0; j < c.count[o]; j++) {
        const s = c.start[o] + j - lo;
        m[dim === 2 ? s * n + (o - a) : (o - a) * span + s] = c.k[o * c.ksize + j];
      }
    }
    const band = x.narrow(dim, lo - offset, span);
    const src = band.to('float64');
    const w = fromBytes(m, dim === 2 ? [span, n] : [n, span], 'float64');
    parts.push(dim === 2 ? src.matmul(w) : w.matmul(src));
    band.dispose();
    src.dispose();
    w.dispose();
  }
  const joined = parts.length === 1 ? parts[0] : cat(parts, dim);
  if (parts.length > 1) for (const p of parts) p.dispose();
  const shifted = joined.add(0.5);
  joined.dispose();
  const floored = shifted.floor();
  shifted.dispose();
  return floored.clamp_({ min: 0, max: 255 });
}

/**
 * PIL's NEAREST resize (ImagingScaleAffine): source index trunc(scale / 2 + i * scale), the position
 * accumulated by repeated addition as PIL does (which can differ from a product at exact integers).
 */
function nearestIndex(inSize: number, outSize: number, o0: number, o1: number): Tensor {
  const scale = inSize / outSize;
  const idx = new BigInt64Array(o1 - o0);
  let pos = scale * 0.5;
  for (let o = 0; o < o1; o++, pos += scale) if (o >= o0) idx[o - o0] = BigInt(Math.min(Math.trunc(pos), inSize - 1));
  return fromBytes(idx, [o1 - o0], 'int64');
}

export interface ResizeCropSpec {
  /** Size after resizing (before the crop). */
  height: number;
  width: number;
  /** The window of the resized image to compute: rows [top, top + cropHeight), columns [left, left + cropWidth). */
  top: number;
  left: number;
  cropHeight: number;
  cropWidth: number;
  filter: ResampleFilter;
}

/**
 * PIL's `img.resize((width, height), filter).crop(window)` on a C x H x W tensor of 8-bit values
 * (uint8 or any real dtype), as float64 values 0..255: only the window is computed (each output
 * pixel depends only on its own source band, so this is exactly the full resize, cropped).
 */
export function resizeCropPIL(x: Tensor, spec: ResizeCropSpec): Tensor {
  const [, H, W] = x.shape;
  const { height: outH, width: outW, top, left, cropHeight: ch, cropWidth: cw, filter } = spec;
  check(x.ndim === 3, 'resize', `expected a C x H x W image, got ${x.ndim}-d`, 'E_SHAPE');
  check(RESAMPLE_FILTERS.includes(filter), 'resize', `unknown interpolation '${String(filter)}' (expected one of ${RESAMPLE_FILTERS.join(', ')})`);
  check(
    top >= 0 && left >= 0 && top + ch <= outH && left + cw <= outW && ch > 0 && cw > 0,
    'resize',
    `window (top ${top}, left ${left}, ${ch}x${cw}) outside a ${outH}x${outW} image`,
    'E_SHAPE',
  );
  if (filter === 'nearest') {
    // PIL copies when the size does not change; otherwise picks source pixels.
    const ri = outH === H ? null : nearestIndex(H, outH, top, top + ch);
    const rows = ri ? x.indexSelect(1, ri) : x.narrow(1, top, ch);
    const ci = outW === W ? null : nearestIndex(W, outW, left, left + cw);
    const both = ci ? rows.indexSelect(2, ci) : rows.narrow(2, left, cw);
    const out = both.to('float64');
    for (const t of [ri, rows, ci, both]) if (t && t !== x) t.dispose();
    return out;
  }
  // Rows of the source the vertical pass will read (PIL's horizontal pass also skips the others).
  let r0 = top,
    r1 = top + ch;
  if (outH !== H) [r0, r1] = sourceRange(pilCoefficients(H, outH, filter), top, top + ch);
  const band = x.narrow(1, r0, r1 - r0);
  let horiz: Tensor;
  if (outW !== W) horiz = pass(band, 2, W, outW, filter, left, left + cw, 0);
  else {
    const cols = band.narrow(2, left, cw);
    horiz = cols.to('float64');
    cols.dispose();
  }
  band.dispose();
  if (outH === H) return horiz;
  const out = pass(horiz, 1, H, outH, filter, top, top + ch, r0);
  horiz.dispose();
  return out;
}

/** Zero padding [left, right, top, bottom] of a C x H x W tensor (torchvision's CenterCrop of a too-small image). */
export function padZeros(x: Tensor, left: number, right: number, top: number, bottom: number): Tensor {
  const four = x.unsqueeze(0);
  const padded = F.pad(four, [left, right, top, bottom]);
  four.dispose();
  const out = padded.squeeze(0);
  padded.dispose();
  return out;
}
