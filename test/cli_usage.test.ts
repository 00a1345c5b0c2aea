// The rough edges of the command line a new user meets first: --version, bad numbers, ids typed in
// another case or misspelled, `list` by family, and option checks of the library's model builder.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as cz from '../src/index.js';

const CLI = path.resolve('dist/cli/main.js');
const run = (args: string[]) => spawnSync('node', [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });

describe('convzoo usage', () => {
  it('--version prints the package version', () => {
    const r = run(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });

  it('bad numbers are one-line usage errors with exit 2, never a stack trace', () => {
    const cases: [string[], RegExp][] = [
      [['info', 'resnet18', '--input-size', 'abc'], /--input-size.*'abc'.*expected an integer/],
      [['info', 'resnet18', '--num-classes', '0'], /--num-classes.*expected an integer from 1/],
      [['predict', 'x.jpg', '--batch-size', '0'], /--batch-size.*expected an integer from 1/],
      [['predict', 'x.jpg', '--batch-size', '-3'], /--batch-size/],
      [['predict', 'x.jpg', '--topk', '0'], /--topk.*at least 1/],
      [['predict', 'x.jpg', '--topk', '2.5'], /--topk.*expected an integer/],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack frames
    }
  });

  it('an unknown command or option suggests the right one', () => {
    const r = run(['lst']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Did you mean list\?/);
  });

  it('ids are case-insensitive and reported in their registered form', () => {
    const r = run(['info', 'ResNet50', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).id).toBe('resnet50');
    expect(cz.modelMeta('VGG16_BN').id).toBe('vgg16_bn');
  });

  it('unknown ids get the nearest ids first (edit distance)', () => {
    const r = run(['info', 'resnt50']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown model 'resnt50'; did you mean resnet50,/);
    expect(cz.suggestIds('alexnt')[0]).toBe('alexnet');
    expect(cz.suggestIds('googlnet')[0]).toBe('googlenet');
    expect(cz.suggestIds('vgg16bn')).toContain('vgg16_bn');
    expect(cz.suggestIds('zzzzzzzz')).toEqual([]);
  });

  it("list <family> includes the family's CIFAR networks; globs match whole ids", () => {
    const r = run(['list', 'resnet', '--json']);
    const ids = JSON.parse(r.stdout).map((m: { id: string }) => m.id);
    for (const id of ['resnet18', 'resnet152', 'resnet20', 'resnet110', 'wide_resnet50_2']) expect(ids).toContain(id);
    expect(ids).not.toContain('vgg16');
    // A family word does not match inside other ids: 'senet' lists the SENets, not densenet121.
    const senets = cz.listModels('senet');
    for (const id of ['legacy_senet154', 'legacy_seresnet18', 'seresnet50', 'seresnext50_32x4d']) expect(senets).toContain(id);
    expect(senets.filter((id) => id.startsWith('densenet'))).toEqual([]);
    expect(cz.listModels('vgg1?_bn')).toEqual(['vgg11_bn', 'vgg13_bn', 'vgg16_bn', 'vgg19_bn']);
    expect(cz.listModels('RESNEXT*')).toContain('resnext50_32x4d');
  });
});

describe('model options are checked before anything is built', () => {
  it('refuses bad numClasses, inChans and dropRate with E_ARG', () => {
    const bad: Record<string, unknown>[] = [
      { numClasses: 0 },
      { numClasses: 2.5 },
      { numClasses: -1 },
      { inChans: 0 },
      { dropRate: 1 },
      { dropRate: -0.1 },
      { dropRate: Number.NaN },
    ];
    for (const o of bad) {
      let err: unknown;
      try {
        cz.buildModel('resnet20', o);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(o)).toBeInstanceOf(cz.ConvzooError);
      expect((err as cz.ConvzooError).code).toBe('E_ARG');
      expect((err as Error).message).toMatch(Object.keys(o)[0]);
    }
  });
});
