// timm's EfficientNet-family blocks and its block-string builder (timm/models/_efficientnet_blocks.py,
// _efficientnet_builder.py), used by timm's MnasNet, EfficientNet (tf_* ports) and any later family built
// the same way (MobileNet v2/v3 as timm has them, MixNet, FBNet, ...).
//
// Keys are timm's: a DepthwiseSeparableConv is `conv_dw`, `bn1`, `se.conv_reduce`, `se.conv_expand`,
// `conv_pw`, `bn2`; an InvertedResidual is `conv_pw`, `bn1`, `conv_dw`, `bn2`, `se.*`, `conv_pwl`, `bn3`.
// timm's BatchNormAct2d holds its activation inside the norm (no parameters), here it is the block's
// `act1`/`act2` field: the state dict is the same.
//
// An architecture is data: rows of BlockDef (what timm's strings such as 'ir_r2_k3_s2_e6_c24_se0.25'
// say, decoded by decodeBlockString), scaled in depth by scaleStageDepth (timm's depth_trunc 'ceil') and
// in width by roundChannels, then built by buildEfficientNetStages into `blocks.<stage>.<i>`.
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { ConvzooError, check } from '../errors.js';
import { Module, runChain, type AnyModule } from './module.js';
import { Conv2d, BatchNorm2d, Linear, Sequential, type BatchNormOptions } from './layers.js';
import { createConv2d } from './conv2d_same.js';
import { SqueezeExcite } from './squeeze_excite.js';
import { DropPath } from './drop_path.js';
import { makeDivisible } from './make_divisible.js';
import { getActivation, type ActName } from './activations.js';
import * as init from './init.js';

/** 'same' is TensorFlow's padding (computed from the input where it is not static, timm's pad_type 'same'); undefined is symmetric (k - 1) / 2. */
export type PadType = 'same' | undefined;

/** Python's round(): halves go to the even neighbour (timm's channel and repeat rounding uses it). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** timm's round_channels: makeDivisible(channels * multiplier, divisor, min, roundLimit); a multiplier of 0 keeps channels. */
export function roundChannels(channels: number, multiplier = 1, divisor = 8, channelMin?: number, roundLimit = 0.9): number {
  if (!multiplier) return channels;
  return makeDivisible(channels * multiplier, divisor, channelMin, roundLimit);
}

/** timm's SE width for a block: round(channels * seRatio / expRatio) of the expanded width (se_from_exp false: relative to the block's input). */
export function seReducedChannels(midChannels: number, seRatio: number, expRatio = 1): number {
  return roundHalfEven(midChannels * (seRatio / expRatio));
}

/** timm's efficientnet SqueezeExcite: `conv_reduce`, `act1`, `conv_expand`, `gate` (sigmoid), the block's activation inside. */
export function timmSqueezeExcite(channels: number, rdChannels: number, act: ActName): SqueezeExcite {
  return new SqueezeExcite(channels, {
    rdChannels,
    act,
    gate: 'sigmoid',
    names: { fc1: 'conv_reduce', act: 'act1', fc2: 'conv_expand', gate: 'gate' },
  });
}

/** What every block of a builder shares. */
export interface EfficientNetBlockCommon {
  /** The block's activation (timm: relu for MnasNet, swish for EfficientNet). */
  act: ActName;
  /** BatchNorm2d's options (TF ports: eps 1e-3). */
  norm?: BatchNormOptions;
  padding?: PadType;
  /** Stochastic depth of the residual branch (only where there is a skip). */
  dropPathRate?: number;
}

export interface DepthwiseSeparableOptions extends EfficientNetBlockCommon {
  kernel: number;
  stride?: number;
  dilation?: number;
  /** Reduced SE width (0: no SE). */
  seChannels?: number;
  /** An activation after the pointwise conv (timm's 'dsa'). */
  pwAct?: boolean;
  noskip?: boolean;
}

/** timm's DepthwiseSeparableConv: depthwise kxk, BN, act, [SE], 1x1, BN, [act]; a skip (with drop path) when shapes allow. */
export class DepthwiseSeparableConv extends Module {
  conv_dw: Conv2d;
  bn1: BatchNorm2d;
  act1: AnyModule;
  se: SqueezeExcite | null;
  conv_pw: Conv2d;
  bn2: BatchNorm2d;
  act2: AnyModule | null;
  drop_path: DropPath | null;
  readonly hasSkip: boolean;
  constructor(inC: number, outC: number, o: DepthwiseSeparableOptions) {
    super();
    const stride = o.stride ?? 1;
    this.hasSkip = stride === 1 && inC === outC && !o.noskip;
    this.conv_dw = createConv2d(inC, inC, o.kernel, { stride, dilation: o.dilation ?? 1, groups: inC, padding: o.padding, bias: false });
    this.bn1 = new BatchNorm2d(inC, o.norm);
    this.act1 = getActivation(o.act, { inplace: true });
    this.se = o.seChannels ? timmSqueezeExcite(inC, o.seChannels, o.act) : null;
    this.conv_pw = createConv2d(inC, outC, 1, { padding: o.padding, bias: false });
    this.bn2 = new BatchNorm2d(outC, o.norm);
    this.act2 = o.pwAct ? getActivation(o.act, { inplace: true }) : null;
    this.drop_path = this.hasSkip && o.dropPathRate ? new DropPath(o.dropPathRate) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = runChain(x, [this.conv_dw, this.bn1, this.act1, this.se, this.conv_pw, this.bn2, this.act2]);
      return this.hasSkip ? runChain(y, [this.drop_path]).add_(x) : y;
    });
  }
  /** timm's zero_init_last: the pointwise BN scale to zero (the block then starts as its skip). */
  zeroInitLast(): void {
    if (this.bn2.weight) init.zeros_(this.bn2.weight);
  }
}

export interface InvertedResidualOptions extends EfficientNetBlockCommon {
  kernel: number;
  stride?: number;
  dilation?: number;
  /** The expansion ratio: the middle width is makeDivisible(in * expRatio, 8). */
  expRatio: number;
  seChannels?: number;
  noskip?: boolean;
}

/** timm's InvertedResidual (MBConv): 1x1 expand, BN, act, depthwise kxk, BN, act, [SE], 1x1 project, BN; skip with drop path. */
export class InvertedResidual extends Module {
  conv_pw: Conv2d;
  bn1: BatchNorm2d;
  act1: AnyModule;
  conv_dw: Conv2d;
  bn2: BatchNorm2d;
  act2: AnyModule;
  se: SqueezeExcite | null;
  conv_pwl: Conv2d;
  bn3: BatchNorm2d;
  drop_path: DropPath | null;
  readonly hasSkip: boolean;
  readonly midChannels: number;
  constructor(inC: number, outC: number, o: InvertedResidualOptions) {
    super();
    const stride = o.stride ?? 1;
    this.hasSkip = stride === 1 && inC === outC && !o.noskip;
    const mid = makeDivisible(inC * o.expRatio, 8);
    this.midChannels = mid;
    this.conv_pw = createConv2d(inC, mid, 1, { padding: o.padding, bias: false });
    this.bn1 = new BatchNorm2d(mid, o.norm);
    this.act1 = getActivation(o.act, { inplace: true });
    this.conv_dw = createConv2d(mid, mid, o.kernel, { stride, dilation: o.dilation ?? 1, groups: mid, padding: o.padding, bias: false });
    this.bn2 = new BatchNorm2d(mid, o.norm);
    this.act2 = getActivation(o.act, { inplace: true });
    this.se = o.seChannels ? timmSqueezeExcite(mid, o.seChannels, o.act) : null;
    this.conv_pwl = createConv2d(mid, outC, 1, { padding: o.padding, bias: false });
    this.bn3 = new BatchNorm2d(outC, o.norm);
    this.drop_path = this.hasSkip && o.dropPathRate ? new DropPath(o.dropPathRate) : null;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = runChain(x, [this.conv_pw, this.bn1, this.act1, this.conv_dw, this.bn2, this.act2, this.se, this.conv_pwl, this.bn3]);
      return this.hasSkip ? runChain(y, [this.drop_path]).add_(x) : y;
    });
  }
  /** timm's zero_init_last: the projection's BN scale to zero, so the block starts as the identity. */
  zeroInitLast(): void {
    if (this.bn3.weight) init.zeros_(this.bn3.weight);
  }
}

// ---- the builder: block rows as data

/** One row of an architecture (timm's decoded block string); `repeats` blocks, the first with `stride`. */
export interface BlockDef {
  type: 'ds' | 'dsa' | 'ir';
  repeats: number;
  kernel: number;
  stride: number;
  /** Expansion ratio (ir; 1 for ds). */
  expRatio: number;
  outChannels: number;
  /** SE ratio relative to the block's input width (0: none). */
  seRatio: number;
  noskip: boolean;
  /** The row's own activation, else the model's. */
  act?: ActName;
}

const ACT_CODES: Record<string, ActName> = { re: 'relu', r6: 'relu6', hs: 'hard_swish', sw: 'swish', mi: 'mish' };

/**
 * Decodes one of timm's block strings ('ir_r2_k3_s2_e6_c24_se0.25', 'ds_r1_k3_s1_e1_c16_noskip'): the type
 * (ds, dsa, ir) then r repeats, k kernel, s stride, e expansion, c channels, se ratio, n activation
 * (re, r6, hs, sw, mi), noskip. Only the options these families use; anything else is an error.
 */
export function decodeBlockString(s: string): BlockDef {
  const fail = (why: string): never => {
    throw new ConvzooError(`decodeBlockString: '${s}': ${why}`, 'E_ARG', 'decodeBlockString');
  };
  const [type, ...ops] = s.split('_');
  if (type !== 'ds' && type !== 'dsa' && type !== 'ir') fail(`unknown block type '${type}' (ds, dsa, ir)`);
  const num: Record<string, number> = {};
  let noskip = false;
  let act: ActName | undefined;
  for (const op of ops) {
    if (op === 'noskip') noskip = true;
    else if (op.startsWith('n')) act = ACT_CODES[op.slice(1)] ?? fail(`unknown activation '${op}'`);
    else {
      const m = /^([a-z]+)(\d.*)$/.exec(op);
      if (!m || !['r', 'k', 's', 'e', 'c', 'se'].includes(m[1]) || !Number.isFinite(Number(m[2]))) fail(`cannot read '${op}'`);
      num[m![1]] = Number(m![2]);
    }
  }
  for (const k of ['r', 'k', 's', 'c']) if (num[k] === undefined) fail(`missing '${k}'`);
  if (type === 'ir' && num.e === undefined) fail("missing 'e'");
  return {
    type: type as BlockDef['type'],
    repeats: num.r,
    kernel: num.k,
    stride: num.s,
    expRatio: type === 'ir' ? num.e : 1,
    outChannels: num.c,
    seRatio: num.se ?? 0,
    noskip: noskip || type === 'dsa',
    act,
  };
}

/**
 * timm's _scale_stage_depth: a stage's total repeats times `multiplier` (ceil, or Python round with at
 * least 1), shared out over its rows from the last one back. Returns one row per block (repeats 1).
 */
export function scaleStageDepth(rows: readonly BlockDef[], multiplier = 1, trunc: 'ceil' | 'round' = 'ceil'): BlockDef[] {
  let total = rows.reduce((a, r) => a + r.repeats, 0);
  let scaled = trunc === 'round' ? Math.max(1, roundHalfEven(total * multiplier)) : Math.ceil(total * multiplier);
  const reps: number[] = [];
  for (const r of [...rows].reverse()) {
    const rs = Math.max(1, roundHalfEven((r.repeats / total) * scaled));
    reps.unshift(rs);
    total -= r.repeats;
    scaled -= rs;
  }
  return rows.flatMap((r, i) => Array.from({ length: reps[i] }, () => ({ ...r, repeats: 1 })));
}

/** timm's decode_arch_def: stages of block strings, each stage scaled in depth; one BlockDef per block. */
export function decodeArchDef(stages: readonly (readonly string[])[], depthMultiplier = 1, trunc: 'ceil' | 'round' = 'ceil'): BlockDef[][] {
  return stages.map((rows) => scaleStageDepth(rows.map(decodeBlockString), depthMultiplier, trunc));
}

export interface StageBuildOptions {
  /** Block widths: (channels) -> rounded channels (timm's round_chs_fn). */
  roundChannels: (channels: number) => number;
  act: ActName;
  norm?: BatchNormOptions;
  padding?: PadType;
  /** Block i of n gets dropPathRate * i / n (timm's and torchvision's schedule). */
  dropPathRate?: number;
}

/** timm's EfficientNetBuilder: the stages of `blocks` from one BlockDef per block (decodeArchDef's output). */
export function buildEfficientNetStages(
  inChannels: number,
  stages: readonly (readonly BlockDef[])[],
  o: StageBuildOptions,
): { stages: Sequential[]; outChannels: number } {
  const total = stages.reduce((a, s) => a + s.length, 0);
  let index = 0;
  let inC = inChannels;
  const built = stages.map(
    (rows) =>
      new Sequential(
        ...rows.map((row, i) => {
          check(row.stride === 1 || row.stride === 2, 'buildEfficientNetStages', `stride must be 1 or 2, got ${row.stride}`);
          const outC = o.roundChannels(row.outChannels);
          const common = {
            act: row.act ?? o.act,
            norm: o.norm,
            padding: o.padding,
            kernel: row.kernel,
            stride: i === 0 ? row.stride : 1,
            noskip: row.noskip,
            dropPathRate: ((o.dropPathRate ?? 0) * index++) / total,
          };
          let block: Module;
          if (row.type === 'ir') {
            const mid = makeDivisible(inC * row.expRatio, 8);
            block = new InvertedResidual(inC, outC, {
              ...common,
              expRatio: row.expRatio,
              seChannels: row.seRatio ? seReducedChannels(mid, row.seRatio, row.expRatio) : 0,
            });
          } else {
            block = new DepthwiseSeparableConv(inC, outC, {
              ...common,
              pwAct: row.type === 'dsa',
              seChannels: row.seRatio ? seReducedChannels(inC, row.seRatio) : 0,
            });
          }
          inC = outC;
          return block;
        }),
      ),
  );
  return { stages: built, outChannels: inC };
}

/**
 * timm's _init_weight_goog (TF's initialisation): convs N(0, sqrt(2 / fan_out)) with fan_out = k*k*out/groups,
 * BN to identity, linear layers U(+-1/sqrt(out)), zero biases.
 */
export function initEfficientNetWeights(model: AnyModule): void {
  for (const m of model.modules()) {
    if (m instanceof Conv2d) {
      const fanOut = (m.kernelSize[0] * m.kernelSize[1] * m.outChannels) / m.groups;
      init.normal_(m.weight, 0, Math.sqrt(2 / fanOut));
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof BatchNorm2d) {
      if (m.weight) init.ones_(m.weight);
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof Linear) initEfficientNetLinear(m);
  }
}

/** timm's goog initialisation of a linear layer: U(+-1/sqrt(out)), zero bias. */
export function initEfficientNetLinear(m: AnyModule): void {
  if (!(m instanceof Linear)) return;
  const r = 1 / Math.sqrt(m.outFeatures);
  init.uniform_(m.weight, -r, r);
  if (m.bias) init.zeros_(m.bias);
}
