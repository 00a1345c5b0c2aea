// Decoding an image file to the 8-bit pixels that PIL's `Image.open(f).convert('RGB')` gives
// (torchvision's pil_loader), with sharp (libvips) as the decoder.
//
// libvips and PIL decode JPEG with libjpeg(-turbo) alike and PNG losslessly, so the file's channel
// values agree; what differs is what happens next, and here PIL's choices are followed:
//  - no colour management: an embedded ICC profile is ignored (PIL ignores it too);
//  - CMYK is converted with PIL's naive formula (c, m, y, k) -> 255 - k - c * (255 - k) / 255, not
//    through an ICC profile as sharp would;
//  - alpha is dropped, not premultiplied or flattened (convert('RGB') keeps the stored colour);
//  - greyscale is replicated to three channels;
//  - 16-bit: RGB(A) and grey+alpha keep the high byte (PIL unpacks "RGB;16B" that way), while a 16-bit
//    greyscale image becomes PIL's 32-bit mode "I", which convert('RGB') clips to 255: values above
//    255 saturate. That is what torchvision's loader feeds a model, so it is reproduced.
// One deliberate difference: EXIF orientation is applied by default (`autoOrient`), which
// torchvision's loader does not do; it only permutes pixels, so unrotated images are unaffected.
import sharp from 'sharp';
import { stat } from 'node:fs/promises';
import { ConvzooError, check } from '../errors.js';

/** Interleaved (HWC) 8-bit pixels: 3 channels (RGB) or 1 (greyscale, which PIL's RGB replicates). */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

export interface DecodeOptions {
  /** Rotate / flip by the EXIF orientation (default true). torchvision's loader does not: pass false to match it on rotated photos. */
  autoOrient?: boolean;
  /**
   * The most pixels (width x height) an image may have, checked from its header before anything is
   * decoded (a decompression bomb is refused cheaply): E_IMAGE with op MAX_PIXELS_OP. Default: no limit
   * of convzoo's own (sharp's default of 268 megapixels still applies).
   */
  maxPixels?: number;
}

/** The `op` of the E_IMAGE error a `maxPixels` refusal throws (a server maps it to 413). */
export const MAX_PIXELS_OP = 'decodeImage.maxPixels';

/** A readable name for errors. */
export const sourceName = (source: string | Buffer): string => (typeof source === 'string' ? source : 'image buffer');

/**
 * A path is checked before anything opens it: a FIFO, socket, device or directory would block a
 * reader (or fail obscurely), so anything but a regular file is refused with E_IMAGE.
 */
async function checkRegularFile(file: string): Promise<void> {
  let st;
  try {
    st = await stat(file);
  } catch (e) {
    throw new ConvzooError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'E_IMAGE');
  }
  if (!st.isFile()) throw new ConvzooError(`${file}: not a regular file`, 'E_IMAGE');
}

/** PIL's cmyk2rgb (Convert.c): MULDIV255 rounding, clipped. */
function cmykToRgb(src: Uint8Array, pixels: number, stride: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let p = 0, s = 0, d = 0; p < pixels; p++, s += stride, d += 3) {
    const nk = 255 - src[s + 3];
    for (let c = 0; c < 3; c++) {
      const t = src[s + c] * nk + 128;
      const v = nk - (((t >> 8) + t) >> 8);
      out[d + c] = Math.max(v, 0);
    }
  }
  return out;
}

/** Takes `keep` of every `stride` bytes (dropping alpha), converting 16-bit samples as PIL does. */
function pick(src: Uint8Array | Uint16Array, pixels: number, stride: number, keep: number, conv?: (v: number) => number): Uint8Array {
  if (!conv && stride === keep && src instanceof Uint8Array) return src;
  const out = new Uint8Array(pixels * keep);
  for (let p = 0, s = 0, d = 0; p < pixels; p++, s += stride) {
    for (let c = 0; c < keep; c++) out[d++] = conv ? conv(src[s + c]) : src[s + c];
  }
  return out;
}

/** Decodes to PIL's convert('RGB') pixels (see the top of this file). Errors are E_IMAGE naming the source. */
export async function decodeImage(source: string | Buffer, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const name = sourceName(source);
  const maxPixels = opts.maxPixels;
  if (maxPixels !== undefined)
    check(Number.isFinite(maxPixels) && maxPixels >= 1, 'decodeImage', `expected maxPixels to be a number >= 1, got ${String(maxPixels)}`);
  if (typeof source === 'string') await checkRegularFile(source);
  try {
    // sharp's own limit as well, in case a decoder finds more pixels than the header claimed.
    const limitInputPixels = maxPixels === undefined ? undefined : Math.floor(maxPixels);
    const input = { failOn: 'error' as const, ignoreIcc: true, autoOrient: opts.autoOrient ?? true, ...(limitInputPixels ? { limitInputPixels } : {}) };
    // metadata() reads the header only: the size is known before any pixel is decoded.
    const meta = await sharp(source, { ...input, limitInputPixels: false }).metadata();
    const headerPixels = (meta.width ?? 0) * (meta.height ?? 0);
    if (maxPixels !== undefined && headerPixels > maxPixels) {
      throw new ConvzooError(`${name}: ${meta.width} x ${meta.height} = ${headerPixels} pixels, more than the limit of ${maxPixels}`, 'E_IMAGE', MAX_PIXELS_OP);
    }
    const space = meta.space ?? 'srgb';
    const bands = meta.channels ?? 3;
    let img = sharp(source, input);
    if (space === 'cmyk') {
      const { data, info } = await img.pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true });
      return { data: cmykToRgb(data, info.width * info.height, info.channels), width: info.width, height: info.height, channels: 3 };
    }
    const grey = space === 'b-w' || space === 'grey16' || bands <= 2;
    if (meta.depth === 'ushort') {
      img = img.toColourspace(grey ? 'grey16' : 'rgb16');
      const { data, info } = await img.raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
      const px = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
      // Grey without alpha is PIL's mode "I" (clipped to 255); everything else keeps the high byte.
      const conv = grey && info.channels === 1 ? (v: number) => Math.min(v, 255) : (v: number) => v >> 8;
      const keep = grey ? 1 : 3;
      return { data: pick(px, info.width * info.height, info.channels, keep, conv), width: info.width, height: info.height, channels: keep };
    }
    img = img.toColourspace(grey ? 'b-w' : 'srgb');
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    const keep = grey ? 1 : 3;
    const pixels = info.width * info.height;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
    return { data: pick(bytes, pixels, info.channels, keep), width: info.width, height: info.height, channels: keep };
  } catch (e) {
    if (e instanceof ConvzooError) throw e;
    throw new ConvzooError(`${name}: not a decodable image (${(e as Error).message})`, 'E_IMAGE');
  }
}

/** PIL's convert('L') of RGB pixels (ITU-R 601-2 luma, 16-bit fixed point, rounded). */
export function rgbToLuma(img: DecodedImage): DecodedImage {
  if (img.channels === 1) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  const d = img.data;
  for (let p = 0, s = 0; p < n; p++, s += 3) out[p] = (d[s] * 19595 + d[s + 1] * 38470 + d[s + 2] * 7471 + 0x8000) >>> 16;
  return { data: out, width: img.width, height: img.height, channels: 1 };
}
