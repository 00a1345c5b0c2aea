// Padding arithmetic for convolutions and pooling windows (timm's layers/padding.py). Plain numbers
// only, no tensors: functional.ts's padSame and the *Same modules build on it.

/**
 * Symmetric padding that keeps the output at ceil(input / stride): ((s - 1) + d*(k - 1)) // 2, as
 * timm's get_padding. For odd kernels with stride 1 or 2 this is torchvision's (k - 1) // 2 * d.
 */
export function getPadding(kernelSize: number, opts: { stride?: number; dilation?: number } = {}): number {
  const { stride = 1, dilation = 1 } = opts;
  return Math.floor((stride - 1 + dilation * (kernelSize - 1)) / 2);
}

/** TensorFlow's total 'SAME' padding along one dim: max((ceil(i/s) - 1)*s + (k - 1)*d + 1 - i, 0). */
export function getSamePadding(inputSize: number, kernelSize: number, stride = 1, dilation = 1): number {
  return Math.max((Math.ceil(inputSize / stride) - 1) * stride + (kernelSize - 1) * dilation + 1 - inputSize, 0);
}

/** [before, after] of TensorFlow's 'SAME' padding: an odd pixel goes after (right/bottom), as TF does. */
export function sameConvPadding(inputSize: number, kernelSize: number, stride = 1, dilation = 1): [number, number] {
  const total = getSamePadding(inputSize, kernelSize, stride, dilation);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/**
 * Whether TF 'SAME' padding is the same for every input size and symmetric, so that a fixed
 * getPadding() can replace it (stride 1 and an even d*(k - 1)), as timm's is_static_pad.
 */
export function isStaticPad(kernelSize: number, opts: { stride?: number; dilation?: number } = {}): boolean {
  const { stride = 1, dilation = 1 } = opts;
  return stride === 1 && (dilation * (kernelSize - 1)) % 2 === 0;
}
