// ResNet, ResNeXt and wide ResNets against torchvision; the blocks' injection points (attention,
// activation, norm, drop path); zero-init residuals by capability; strict options.
import { describe, test, expect } from 'vitest';
import * as cz from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { ResNet, BasicBlock, Bottleneck, type BlockOptions } from '../src/models/resnet.js';
import { checkLeaks, parityTests, build, disposeModel, stateSpec } from './helpers/tv_reference.js';

checkLeaks();

parityTests(
  'torchvision parity: resnet',
  [
    'resnet18',
    'resnet34',
    'resnet50',
    'resnet101',
    'resnet152',
    'resnext50_32x4d',
    'resnext101_32x8d',
    'resnext101_64x4d',
    'wide_resnet50_2',
    'wide_resnet101_2',
  ].map((id) => ({ id, size: 64, batch: 2 })),
);

/** A squeeze-and-excitation layer, as SE-ResNet injects (the toolkit's SqueezeExcite will replace it). */
class TinySE extends cz.nn.Module {
  fc1: cz.nn.Conv2d;
  fc2: cz.nn.Conv2d;
  calls = 0;
  constructor(ch: number) {
    super();
    this.fc1 = new cz.nn.Conv2d(ch, 4, 1);
    this.fc2 = new cz.nn.Conv2d(4, ch, 1);
  }
  forward(x: Tensor): Tensor {
    this.calls++;
    return cz.tidy(() => x.mul(this.fc2.forward(this.fc1.forward(x.mean([2, 3], { keepdim: true })).relu()).sigmoid()));
  }
}

/** Counts its calls and scales its input: a stand-in for the toolkit's DropPath. */
class ScaleBy extends cz.nn.Module {
  constructor(readonly rate: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.mul(1 - this.rate);
  }
}

describe('ResNet blocks: injection points', () => {
  test("attnLayer puts a module at each block's `se`, after the last norm and before the residual add", () => {
    const plain = new ResNet({ block: Bottleneck, layers: [1, 1, 1, 1] });
    const se = new ResNet({ block: Bottleneck, layers: [1, 1, 1, 1], attnLayer: (c) => new TinySE(c) });
    try {
      const keys = stateSpec(se).map((e) => e.key);
      // torchvision's keys, with timm's `se.*` between bn3 and downsample.
      expect(keys.slice(keys.indexOf('layer1.0.bn3.num_batches_tracked') + 1, keys.indexOf('layer1.0.downsample.0.weight'))).toEqual([
        'layer1.0.se.fc1.weight',
        'layer1.0.se.fc1.bias',
        'layer1.0.se.fc2.weight',
        'layer1.0.se.fc2.bias',
      ]);
      expect(keys.filter((k) => !k.includes('.se.'))).toEqual(stateSpec(plain).map((e) => e.key));
      // Same weights otherwise: the SE output is the only difference, and it runs once per block.
      const sd = plain.stateDict();
      se.loadStateDict(sd, { strict: false });
      for (const t of Object.values(sd)) t.dispose();
      const block = se.layer1[0] as Bottleneck;
      cz.tidy(() => {
        se.eval();
        plain.eval();
        const x = cz.randn([1, 3, 32, 32]);
        const y = cz.noGrad(() => se.forward(x)),
          z = cz.noGrad(() => plain.forward(x));
        expect(y.sub(z).abs().max().item()).toBeGreaterThan(0);
        expect((block.se as TinySE).calls).toBe(1);
        // By hand: relu(se(bn3(...)) + downsample(x)).
        const f = cz.noGrad(() => se.maxpool.forward(se.bn1.forward(se.conv1.forward(x)).relu()));
        const branch = cz.noGrad(() =>
          block.bn3.forward(block.conv3.forward(block.bn2.forward(block.conv2.forward(block.bn1.forward(block.conv1.forward(f)).relu())).relu())),
        );
        const want = cz.noGrad(() => block.se!.forward(branch).add(block.downsample!.forward(f)).relu());
        expect(
          cz
            .noGrad(() => block.forward(f))
            .sub(want)
            .abs()
            .max()
            .item(),
        ).toBeLessThan(1e-5);
      });
    } finally {
      disposeModel(plain);
      disposeModel(se);
    }
  });

  test("act and norm factories replace every ReLU and BatchNorm2d (shortcut included); keys stay torchvision's", () => {
    let acts = 0,
      norms = 0;
    const m = new ResNet({
      block: BasicBlock,
      layers: [1, 1, 1, 1],
      act: () => {
        acts++;
        return new cz.nn.SiLU();
      },
      norm: (c) => {
        norms++;
        return new cz.nn.BatchNorm2d(c, { eps: 1e-3 });
      },
    });
    try {
      // stem 1 + 2 per block; norms: stem 1 + 2 per block + 3 shortcuts.
      expect([acts, norms]).toEqual([1 + 4 * 2, 1 + 4 * 2 + 3]);
      expect([...m.modules()].filter((l) => l instanceof cz.nn.ReLU)).toEqual([]);
      expect(((m.layer2[0] as BasicBlock).downsample as cz.nn.Sequential)[1]).toBeInstanceOf(cz.nn.BatchNorm2d);
      expect((((m.layer2[0] as BasicBlock).downsample as cz.nn.Sequential)[1] as cz.nn.BatchNorm2d).eps).toBe(1e-3);
      const ref = build('resnet18');
      try {
        const names = (mm: cz.nn.Module) =>
          stateSpec(mm)
            .map((e) => e.key.replace(/^layer(\d)\.1\..*/, ''))
            .filter(Boolean);
        expect(names(m)).toEqual(names(ref));
      } finally {
        disposeModel(ref);
      }
      cz.tidy(() => {
        m.eval();
        expect(cz.noGrad(() => m.forward(cz.randn([1, 3, 32, 32]))).shape).toEqual([1, 1000]);
      });
    } finally {
      disposeModel(m);
    }
  });

  test("dropPathRate puts the dropPath factory's module at each block's `drop_path`, rates rising linearly to the rate", () => {
    const m = build<ResNet>('resnet18', { dropPathRate: 0.3, dropPath: (p: number) => new ScaleBy(p) });
    try {
      const blocks = [m.layer1, m.layer2, m.layer3, m.layer4].flatMap((s) => [...s]) as BasicBlock[];
      const rates = blocks.map((b) => (b.drop_path as ScaleBy).rate);
      expect(rates.map((r) => +r.toFixed(6))).toEqual([0, 0.3 / 7, 0.6 / 7, 0.9 / 7, 1.2 / 7, 1.5 / 7, 1.8 / 7, 0.3].map((r) => +r.toFixed(6)));
      expect(stateSpec(m).some((e) => e.key.includes('drop_path'))).toBe(false);
      // The branch is scaled before the add.
      const b = blocks[7];
      cz.tidy(() => {
        m.eval();
        const x = cz.randn([1, 512, 2, 2]);
        const branch = cz.noGrad(() => b.bn2.forward(b.conv2.forward(b.bn1.forward(b.conv1.forward(x)).relu())));
        const want = branch.mul(0.7).add(x).relu();
        expect(
          cz
            .noGrad(() => b.forward(x))
            .sub(want)
            .abs()
            .max()
            .item(),
        ).toBeLessThan(1e-5);
      });
    } finally {
      disposeModel(m);
    }
    // No module without a rate; without a factory the toolkit's DropPath is used.
    const none = build<ResNet>('resnet18');
    try {
      expect((none.layer1[0] as BasicBlock).drop_path).toBeNull();
    } finally {
      disposeModel(none);
    }
    const dp = build<ResNet>('resnet18', { dropPathRate: 0.1 });
    try {
      expect((dp.layer4[1] as BasicBlock).drop_path).toBeInstanceOf(cz.nn.DropPath);
    } finally {
      disposeModel(dp);
    }
  });

  test('zeroInitResidual finds blocks by their zeroInitLast(), not their class', () => {
    class MyBlock extends cz.nn.Module {
      static readonly expansion = 1;
      conv: cz.nn.Conv2d;
      bn: cz.nn.BatchNorm2d;
      downsample: cz.nn.Module | null;
      constructor(inplanes: number, planes: number, o: BlockOptions) {
        super();
        this.conv = new cz.nn.Conv2d(inplanes, planes, 3, { stride: o.stride, padding: 1, bias: false });
        this.bn = new cz.nn.BatchNorm2d(planes);
        this.downsample = o.downsample;
      }
      forward(x: Tensor): Tensor {
        return cz.tidy(() => this.bn.forward(this.conv.forward(x)).add(this.downsample ? this.downsample.forward(x) : x));
      }
      zeroInitLast(): void {
        cz.nn.init.zeros_(this.bn.weight!);
      }
    }
    const m = new ResNet({ block: MyBlock, layers: [1, 1, 1, 1] }, { zeroInitResidual: true });
    const r = build<ResNet>('resnet18', { zeroInitResidual: true });
    try {
      cz.tidy(() => {
        expect((m.layer3[0] as MyBlock).bn.weight!.abs().max().item()).toBe(0);
        expect((r.layer3[1] as BasicBlock & { bn2: cz.nn.BatchNorm2d }).bn2.weight!.abs().max().item()).toBe(0);
        expect(r.bn1 instanceof cz.nn.BatchNorm2d && r.bn1.weight!.min().item()).toBe(1);
      });
    } finally {
      disposeModel(m);
      disposeModel(r);
    }
  });
});

describe('ResNet options are declared', () => {
  test('a misspelt option fails and names the nearest one', () => {
    expect(() => build('resnet18', { numClases: 10 })).toThrow(/resnet18: unknown option 'numClases'; did you mean 'numClasses'\?/);
    expect(() => build('resnet20', { zeroInitResidal: true })).toThrow(/did you mean 'zeroInitResidual'/);
    const e = (() => {
      try {
        build('resnet18', { numClases: 10 });
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(cz.ConvzooError);
    expect((e as cz.ConvzooError).code).toBe('E_ARG');
  });

  test('what the variant fixes cannot be overridden; passing the same value is fine', () => {
    expect(() => build('resnet50', { groups: 32 })).toThrow(/resnet50: option 'groups' is fixed by the variant \(groups = 1\), got 32/);
    expect(() => build('resnext50_32x4d', { widthPerGroup: 8 })).toThrow(/'widthPerGroup' is fixed by the variant \(widthPerGroup = 4\)/);
    expect(() => build('resnet18', { layers: [1, 1, 1, 1] })).toThrow(/'layers' is fixed by the variant \(layers = \[2,2,2,2\]\)/);
    expect(() => build('resnet20', { depth: 32 })).toThrow(/'depth' is fixed by the variant/);
    const m = build('resnext50_32x4d', { groups: 32, widthPerGroup: 4, numClasses: 3 });
    try {
      expect(m.numParameters()).toBe(25028904 - 997 * 2049);
    } finally {
      disposeModel(m);
    }
  });

  test('free options are typed and ranged', () => {
    expect(() => build('resnet18', { zeroInitResidual: 'yes' })).toThrow(/expected zeroInitResidual to be true or false, got "yes"/);
    expect(() => build('resnet18', { dropPathRate: 1 })).toThrow(/expected dropPathRate to be a number >= 0 and < 1, got 1/);
    expect(() => build('resnet18', { dropPath: 0.1 })).toThrow(/expected dropPath to be a function/);
    const m = build('resnet18', { numClasses: 4, inChans: 1, dropRate: 0.2, zeroInitResidual: true, dropPathRate: undefined });
    try {
      expect(m.numClasses).toBe(4);
    } finally {
      disposeModel(m);
    }
  });
});

describe('ResNet head', () => {
  test('resetClassifier frees the old fc; 0 gives the pooled features', () => {
    for (const id of ['resnet18', 'resnet20']) {
      const m = build(id);
      try {
        const before = cz.memory().tensors;
        m.resetClassifier(0);
        expect(cz.memory().tensors, id).toBe(before - 2);
        expect(m.numClasses).toBe(0);
        expect(stateSpec(m).some((e) => e.key.startsWith('fc.'))).toBe(false);
        cz.tidy(() => {
          m.eval();
          expect(cz.noGrad(() => m.forward(cz.randn([2, 3, 32, 32]))).shape).toEqual([2, m.numFeatures]);
        });
        m.resetClassifier(7);
        expect(cz.memory().tensors, id).toBe(before);
        expect(
          stateSpec(m)
            .filter((e) => e.key.startsWith('fc.'))
            .map((e) => e.shape),
        ).toEqual([[7, m.numFeatures], [7]]);
        expect(stateSpec(m).at(-1)!.key).toBe('fc.bias');
      } finally {
        disposeModel(m);
      }
    }
  });
});
