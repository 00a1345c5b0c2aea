// The native boundary: the typed op contract, error kinds chosen by libtorch's exception type, strict
// integer conversion and validation of every handle or id that crosses from JavaScript.
import { describe, test, expect } from 'vitest';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import * as cz from '../src/index.js';
import { native, ops, type Handle } from '../src/native.js';

const root = path.resolve(import.meta.dirname, '..');
const signatureFile = path.join(root, 'src/native_ops.ts');

/** The members of `interface NativeOps`, read with the TypeScript parser. */
function signatureNames(): string[] {
  const source = ts.createSourceFile(signatureFile, readFileSync(signatureFile, 'utf8'), ts.ScriptTarget.ES2022);
  const names: string[] = [];
  source.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === 'NativeOps') {
      for (const m of node.members) if (m.name && ts.isIdentifier(m.name)) names.push(m.name.text);
    }
  });
  return names;
}

/** tsc's errors for a snippet placed in test/, type-checked against src/ as `npm test` builds it. */
function typeErrors(code: string): string[] {
  const file = path.join(root, 'test/__native_ops_probe.ts');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.fileExists = (
    (exists) => (f: string) =>
      f === file || exists(f)
  )(host.fileExists.bind(host));
  host.readFile = (f) => (f === file ? code : readFile(f));
  host.getSourceFile = (f, lang, ...rest) => (f === file ? ts.createSourceFile(f, code, lang) : getSourceFile(f, lang, ...rest));
  const program = ts.createProgram([file], options, host);
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === file)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('the typed op contract (src/native_ops.ts)', () => {
  test('NativeOps lists exactly the ops the addon exports', () => {
    const typed = signatureNames();
    const exported = Object.keys(native.ops);
    expect(new Set(typed).size, 'an op is listed twice in NativeOps').toBe(typed.length);
    expect(
      exported.filter((n) => !typed.includes(n)),
      'in ops.cc, missing from NativeOps',
    ).toEqual([]);
    expect(
      typed.filter((n) => !exported.includes(n)),
      'in NativeOps, missing from ops.cc',
    ).toEqual([]);
    expect(typed.length).toBeGreaterThan(150);
  });

  test('removed ops with no caller stay removed', () => {
    for (const dead of ['addmm', 'channel_shuffle', 'data_ptr_equal', 'expm1', 'fmod', 'tril']) {
      expect(Object.keys(native.ops)).not.toContain(dead);
    }
  });

  test('tsc rejects a misspelt op, a wrong argument count and a wrong argument type', () => {
    const errors = typeErrors(`
      import { ops, type Handle } from '../src/native.js';
      declare const h: Handle;
      export const ok: Handle = ops.conv2d(h, h, undefined, [1, 1], 'same', [1, 1], 1);
      export const shape: number[] = ops.shape(h);
      export const a = ops.convd2(h);
      export const b = ops.relu(h, h);
      export const c = ops.view(h, 'a');
      export const d: number = ops.relu(h);
    `);
    expect(errors, errors.join('\n')).toHaveLength(4);
    for (const expected of [/'convd2' does not exist/, /Expected 1 arguments, but got 2/, /'string' .* 'number\[\]'/, /'Handle' .* 'number'/]) {
      expect(
        errors.some((e) => expected.test(e)),
        `${expected} among:\n${errors.join('\n')}`,
      ).toBe(true);
    }
  }, 60_000);
});

/** The ConvzooError a call throws (failing the test if it throws something else or nothing). */
function errorOf(call: () => unknown): cz.ConvzooError {
  try {
    cz.tidy(() => {
      call();
    });
  } catch (e) {
    if (e instanceof cz.ConvzooError) return e;
    throw new Error(`expected a ConvzooError, got ${String(e)}`);
  }
  throw new Error('the call did not throw');
}

describe('error kinds come from libtorch exception types', () => {
  // Each of these messages says nothing the text classifier recognises; only the type tells the kind.
  test('c10::IndexError -> E_SHAPE', () => {
    const err = errorOf(() => cz.zeros([3]).indexSelect(0, cz.zeros([2, 2], { dtype: 'int64' })));
    expect(err.message).toMatch(/Index is supposed to be a vector/);
    expect(err.code).toBe('E_SHAPE');
  });

  test('c10::TypeError -> E_DTYPE', () => {
    const err = errorOf(() => cz.setRngState(cz.zeros([4])));
    expect(err.message).toMatch(/RNG state must be a torch.ByteTensor/);
    expect(err.code).toBe('E_DTYPE');
  });

  test('c10::ValueError -> E_ARG, or E_SHAPE when its message is about sizes', () => {
    const err = errorOf(() => cz.F.crossEntropy(cz.zeros([3, 4]), cz.tensor([0, 1])));
    expect(err.message).toMatch(/Expected input batch_size \(3\) to match target batch_size \(2\)/);
    expect(err.code).toBe('E_SHAPE');
  });

  test("c10::NotImplementedError -> E_ARG, without the dispatcher's pages of kernels", () => {
    const onMeta = errorOf(() => cz.zeros([1], { device: 'meta' }).item());
    expect(onMeta.message).toMatch(/^item: Could not run .* 'Meta' backend\.$/);
    expect(onMeta.code).toBe('E_ARG');
    const onXla = errorOf(() => cz.zeros([2], { device: 'xla' }));
    expect(onXla.message).toMatch(/^zeros: Could not run .* 'XLA' backend\.$/);
    expect(onXla.code).toBe('E_ARG');
  });

  test('c10::OutOfMemoryError -> E_OOM (raised by the caching CPU allocator)', () => {
    if (!cz.memory().cachingAllocator) return; // CONVZOO_ALLOCATOR=system: libtorch's allocator, classified by text
    const err = errorOf(() => cz.empty([1e12]));
    expect(err.message).toBe('empty: CPU out of memory: tried to allocate 4000000000000 bytes');
    expect(err.code).toBe('E_OOM');
  });

  test('a plain c10::Error still falls back to the message', () => {
    expect(errorOf(() => cz.ones([2, 3]).matmul(cz.ones([4, 2]))).code).toBe('E_SHAPE');
    expect(errorOf(() => cz.ones([3], { dtype: 'int64' }).softmax(0)).code).toBe('E_DTYPE');
  });
});

describe('integer arguments must be integers', () => {
  const x = () => cz.zeros([6]);
  const cases: [string, () => unknown, string, RegExp][] = [
    ['zeros([2.5, 3])', () => cz.zeros([2.5, 3]), 'zeros', /argument 0\[0\] .* got 2\.5$/],
    ['zeros([3, NaN])', () => cz.zeros([3, NaN]), 'zeros', /argument 0\[1\] .* got NaN$/],
    ['zeros([Infinity])', () => cz.zeros([Infinity]), 'zeros', /got Infinity$/],
    ['zeros([2 ** 53]) beyond the safe range', () => cz.zeros([2 ** 53]), 'zeros', /got 9007199254740992$/],
    ['zeros([-1e300])', () => cz.zeros([-1e300]), 'zeros', /got -1e\+300$/],
    ['view(2.9, 3)', () => x().view(2.9, 3), 'view', /argument 1\[0\] .* got 2\.9$/],
    ['select(0, 1.5)', () => x().select(0, 1.5), 'select', /argument 2 .* got 1\.5$/],
    ['narrow(0, 0, NaN)', () => x().narrow(0, 0, NaN), 'narrow', /argument 3 .* got NaN$/],
    ['flatten(0.5)', () => x().flatten(0.5), 'flatten', /argument 1 .* got 0\.5$/],
    ['topk(1.5)', () => x().topk(1.5), 'topk', /argument 1 .* got 1\.5$/],
    ['sum(0.5)', () => x().sum(0.5), 'sum', /argument 1\[0\] .* got 0\.5$/],
    ['cat(dim 0.5)', () => cz.cat([x(), x()], 0.5), 'cat', /argument 1 .* got 0\.5$/],
    ['randint(0, 10.5)', () => cz.randint(0, 10.5, [2]), 'randint', /argument 1 .* got 10\.5$/],
    ['randperm(-Infinity)', () => cz.randperm(-Infinity), 'randperm', /got -Infinity$/],
    ['maxPool2d kernel 2.5', () => cz.F.maxPool2d(cz.zeros([1, 1, 4, 4]), 2.5), 'max_pool2d', /argument [12]\[0\] .* got 2\.5$/],
    ['a BigInt beyond int64', () => ops.narrow(x().handle, 0, 0, (2n ** 63n) as never), 'narrow', /argument 3 to fit in int64, got 9223372036854775808$/],
    ['a BigInt scalar beyond int64', () => ops.add(x().handle, -(2n ** 64n) as never), 'add', /argument 1 to fit in int64/],
    ['a string in a shape', () => cz.zeros([2, '3' as never]), 'zeros', /argument 0\[1\] .* got a string$/],
  ];
  test.each(cases)('%s throws E_ARG naming the argument', (_label, call, op, message) => {
    const live = cz.memory().tensors;
    const err = errorOf(call);
    expect(err.code).toBe('E_ARG');
    expect(err.op).toBe(op);
    expect(err.message).toMatch(new RegExp(`^${op}: expected `));
    expect(err.message).toMatch(message);
    expect(cz.memory().tensors).toBe(live);
  });

  test('whole numbers, negative zero and int64 BigInts are accepted', () => {
    cz.tidy(() => {
      expect(cz.zeros([2, 3]).shape).toEqual([2, 3]);
      expect(cz.zeros([-0, 3]).shape).toEqual([0, 3]);
      expect(cz.arange(10).narrow(0, 2, 3).toArray()).toEqual([2, 3, 4]);
      const h = ops.zeros([2n, 3n] as never);
      try {
        expect(ops.shape(h)).toEqual([2, 3]);
      } finally {
        native.dispose(h);
      }
      expect(cz.full([1], 2 ** 53 - 1, { dtype: 'int64' }).data()[0]).toBe(2n ** 53n - 1n);
    });
  });
});

describe('handles and ids from JavaScript are validated', () => {
  const require = createRequire(import.meta.url);
  const forge = require(path.join(root, 'build/Release/forge_externals.node')) as { untagged(): unknown; otherTag(): unknown };
  const disposedHandle = () => {
    const h = ops.zeros([2]);
    native.dispose(h);
    return h;
  };
  const forged: [string, () => unknown, string][] = [
    ['a plain object', () => ({}), 'E_ARG'],
    ['an object shaped like a Tensor', () => ({ _h: null, handle: {} }), 'E_ARG'],
    ['a number', () => 0x10, 'E_ARG'],
    ['a BigInt', () => 0x10n, 'E_ARG'],
    ['a string', () => 'tensor', 'E_ARG'],
    ['null', () => null, 'E_ARG'],
    ['an array', () => [ops.zeros([1])], 'E_ARG'],
    ['a function', () => () => 1, 'E_ARG'],
    ['an untagged External', () => forge.untagged(), 'E_ARG'],
    ['an External of another type tag', () => forge.otherTag(), 'E_ARG'],
    ['a disposed handle', disposedHandle, 'E_DISPOSED'],
  ];
  // One op per way a handle is read: first operand, tensor-or-scalar operand, optional tensor, tensor list.
  const takers: [string, (bad: Handle) => unknown][] = [
    ['relu', (bad) => ops.relu(bad)],
    ['add', (bad) => ops.add(ops.zeros([1]), bad)],
    ['linear', (bad) => ops.linear(ops.zeros([1, 2]), ops.zeros([3, 2]), bad)],
    ['cat', (bad) => ops.cat([ops.zeros([1]), bad])],
    ['set_grad', (bad) => ops.set_grad(ops.zeros([1]), bad)],
    ['share', (bad) => ops.share(bad)],
  ];
  const grid = forged.flatMap(([what, make, code]) => takers.map(([op, call]) => [`${op} given ${what}`, make, code, op, call] as const));
  // Values that are legitimate there: null is how linear and set_grad take "no tensor", numbers are scalars for add.
  const legitimate = (op: string, v: unknown) =>
    (v === null && (op === 'linear' || op === 'set_grad')) || (op === 'add' && (typeof v === 'number' || typeof v === 'bigint'));
  test.each(grid)('%s', (_label, make, code, op, call) => {
    const bad = make();
    if (legitimate(op, bad)) return;
    const err = errorOf(() => call(bad as Handle));
    expect(err.code).toBe(code);
    expect(err.op).toBe(op);
  });

  test('dispose() ignores anything that is not a live handle', () => {
    for (const [, make] of forged) expect(() => native.dispose(make() as Handle)).not.toThrow();
  });

  test('adopt() takes only live ids from share(), each once', () => {
    const live = cz.memory().tensors;
    const shared = ops.ones([2]);
    const id = ops.share(shared);
    native.dispose(shared);
    const h = ops.adopt(id);
    expect(cz.memory().tensors).toBe(live + 1);
    for (const [what, bad] of [
      ['the same id again', id],
      ['a made-up id', 123456789n],
      ['id 0', 0n],
      ['a negative id', -1n],
      ['an id beyond uint64', 2n ** 64n],
      ['a number', Number(id)],
      ['a tensor handle', h],
      ['a plain object', {}],
      ['a string', String(id)],
      ['undefined', undefined],
    ] as const) {
      const err = errorOf(() => ops.adopt(bad as bigint));
      expect(err.code, what).toBe('E_ARG');
      expect(err.op, what).toBe('adopt');
    }
    native.dispose(h);
    expect(cz.memory().tensors).toBe(live);
  });

  test('the process still works after the forgeries', () => {
    expect(
      cz.tidy(() =>
        cz
          .ones([3])
          .add(cz.ones([3]))
          .sum()
          .item(),
      ),
    ).toBe(6);
  });
});
