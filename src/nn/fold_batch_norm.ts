// Batch norm folded into the convolution before it, for inference: one formula, used on module weights
// (model.optimizeForInference) and on ONNX initializers (exportOnnx).

export interface BatchNormFoldInputs {
  /** The convolution's weight, output channel first ([C_out, ...], flattened). */
  weight: ArrayLike<number>;
  /** Its bias (none: zeros). */
  bias?: ArrayLike<number> | null;
  /** The batch norm's affine weight and bias (none: 1 and 0) and running statistics (none: 0 and 1). */
  gamma?: ArrayLike<number> | null;
  beta?: ArrayLike<number> | null;
  mean?: ArrayLike<number> | null;
  variance?: ArrayLike<number> | null;
  eps: number;
  channels: number;
}

/** W' = W * s and b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps), in float64. */
export function foldBatchNorm(p: BatchNormFoldInputs): { weight: Float64Array; bias: Float64Array } {
  const c = p.channels;
  const at = (a: ArrayLike<number> | null | undefined, i: number, fill: number): number => (a ? a[i] : fill);
  const scale = Float64Array.from({ length: c }, (_, i) => at(p.gamma, i, 1) / Math.sqrt(at(p.variance, i, 1) + p.eps));
  const per = p.weight.length / c;
  const weight = Float64Array.from(p.weight, (v, i) => v * scale[Math.floor(i / per)]);
  const bias = Float64Array.from({ length: c }, (_, i) => (at(p.bias, i, 0) - at(p.mean, i, 0)) * scale[i] + at(p.beta, i, 0));
  return { weight, bias };
}
