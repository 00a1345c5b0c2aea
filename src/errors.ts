/**
 * The one error class of convzoo. Native (libtorch) failures and TypeScript argument checks both
 * produce it, so `instanceof ConvzooError` and `err.code` work for every failure.
 */
export type ErrorCode =
  | 'E_SHAPE'
  | 'E_DTYPE'
  | 'E_OOM'
  | 'E_ARG'
  | 'E_TORCH'
  | 'E_DISPOSED'
  | 'E_STATE_DICT'
  | 'E_FORMAT'
  | 'E_UNSAFE_PICKLE'
  | 'E_IO'
  | 'E_HASH'
  | 'E_NOT_FOUND'
  | 'E_IMAGE'
  | 'E_DATA'
  | 'E_NATIVE'
  /** The request is valid but convzoo cannot do it (an op ONNX export has no mapping for). */
  | 'E_UNSUPPORTED'
  /** A collective or the rendezvous of distributed training failed (another rank died, a timeout). */
  | 'E_DISTRIBUTED';

export class ConvzooError extends Error {
  readonly code: ErrorCode;
  /** The op or function that failed (for native errors, the libtorch op's name). */
  readonly op?: string;
  constructor(message: string, code: ErrorCode = 'E_ARG', op?: string) {
    super(message);
    this.name = 'ConvzooError';
    this.code = code;
    this.op = op;
  }
}

/** Throws an E_ARG error `"<fn>: <message>"` unless `ok`. */
export function check(ok: unknown, fn: string, message: string, code: ErrorCode = 'E_ARG'): asserts ok {
  if (!ok) throw new ConvzooError(`${fn}: ${message}`, code, fn);
}

export function checkInt(value: unknown, fn: string, name: string, min = -Infinity): asserts value is number {
  check(
    Number.isInteger(value) && (value as number) >= min,
    fn,
    `expected ${name} to be an integer${min > -Infinity ? ` >= ${min}` : ''}, got ${String(value)}`,
  );
}

/** Throws an E_ARG error unless `value` is a finite number within [min, max]. */
export function checkNumber(value: unknown, fn: string, name: string, min = -Infinity, max = Infinity): asserts value is number {
  check(
    typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max,
    fn,
    `expected ${name} to be a number${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? `${min > -Infinity ? ' and' : ''} <= ${max}` : ''}, got ${String(value)}`,
  );
}
