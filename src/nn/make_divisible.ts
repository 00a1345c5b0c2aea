// Channel-count rounding shared by MobileNet/EfficientNet-style width multipliers and squeeze-excite.
import { check, checkInt } from '../errors.js';

/**
 * Rounds v to the nearest multiple of `divisor` (at least `minValue`, default `divisor`), adding one
 * more divisor when rounding down would lose more than (1 - roundLimit) of v. torchvision's
 * _make_divisible is roundLimit 0.9 (the default); timm's make_divisible takes it as an argument
 * (its squeeze-excite uses 0: plain nearest rounding).
 */
export function makeDivisible(v: number, divisor = 8, minValue?: number, roundLimit = 0.9): number {
  check(typeof v === 'number' && Number.isFinite(v) && v >= 0, 'makeDivisible', `expected a finite number >= 0, got ${String(v)}`);
  checkInt(divisor, 'makeDivisible', 'divisor', 1);
  // timm writes `min_value or divisor`, torchvision `divisor if None`: the same except for 0, which
  // no caller passes; 0 is taken literally here.
  const floor = minValue ?? divisor;
  let rounded = Math.max(floor, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (rounded < roundLimit * v) rounded += divisor;
  return rounded;
}
