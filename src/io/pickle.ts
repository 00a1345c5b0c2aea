// A pickle virtual machine that can only build data: numbers, strings, lists, tuples, dicts and
// tensor descriptions. Python's unpickler imports and calls whatever a file names (GLOBAL + REDUCE
// is arbitrary code execution); this one knows the handful of callables a state_dict needs and
// refuses everything else before doing anything with it, like torch.load(weights_only=True).
// Opcodes per CPython's Lib/pickletools.py (protocols 0-5).
import { ConvzooError } from '../errors.js';
import type { DType } from '../tensor/tensor.js';

/** A Python dict (also OrderedDict). Keys are strings, numbers, bigints, booleans, null or tuples. */
export class PyDict {
  readonly map = new Map<unknown, PyValue>();
}

/** A set or frozenset (kept as a list: nothing here needs set semantics). */
export class PySet {
  readonly items: PyValue[] = [];
}

/** An allowed global (a class or function) by its dotted name; only REDUCE can use it. */
export class PyGlobal {
  constructor(readonly qualname: string) {}
}

/** A storage as persistent_load describes it: its key in the archive, element type and length. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
    readonly location: string,
  ) {}
}

/** A tensor as torch._utils._rebuild_tensor_v2 describes it: a strided view of a storage. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyDict | PySet | PyGlobal | StorageRef | TensorRef;

/** torch's typed storage classes and the dtype each holds. */
export const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

const ORDERED_DICT = 'collections.OrderedDict';
const REBUILD_TENSOR = 'torch._utils._rebuild_tensor_v2';
const REBUILD_PARAMETER = 'torch._utils._rebuild_parameter';
const ALLOWED_GLOBALS = new Set<string>([ORDERED_DICT, REBUILD_TENSOR, REBUILD_PARAMETER, ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`)]);

/** Thrown when the pickle stream ends early; the legacy reader catches it to read further. */
export class PickleTruncated extends ConvzooError {
  constructor(where: string) {
    super(`${where}: pickle data ends early (truncated file)`, 'E_FORMAT', 'load');
  }
}

/** Turns the tuple a BINPERSID opcode pops into a value (a StorageRef), or throws. */
export type PersistentLoad = (pid: PyValue) => PyValue;

// Opcodes that exist but build objects from arbitrary classes (or need out-of-band data), so a
// weights-only load refuses them by name.
const REFUSED: Record<number, string> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID',
  0x53: 'STRING',
  0x56: 'UNICODE',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

const MAX_LONG_BYTES = 1024;

// Bounds on what a pickle may make the VM do, so that a small hostile file (a deflated flood of
// one opcode) fails with E_FORMAT in bounded memory and time instead of exhausting the process.
// A real state_dict's pickle is small beside them: about 120 bytes and 2.4 KB of objects by the
// estimate below per tensor (resnet50's: 320 tensors, 39 KB, 0.76 MB; with Adam state, 803 tensors,
// 79 KB, 1.8 MB), so the budget fits ~25,000 tensors; its stack holds at most ~1000 items per MARK
// (pickle batches APPENDS and SETITEMS) and its containers nest a few levels deep.

/** data.pkl (or a legacy header) larger than this is refused unread: its opcodes run one per byte at most. */
export const MAX_PICKLE_BYTES = 64 << 20;
/** Items on the stack, all MARK frames together. */
export const MAX_STACK_ITEMS = 1_000_000;
/** MARKs open at once (containers nested inside one another while being built). */
export const MAX_MARKS = 10_000;
/**
 * An estimate of the JavaScript heap the built objects take, charged per object and per reference
 * stored in a container or the memo (costs measured in V8: a dict ~300 bytes, a list or tuple ~100,
 * a Map entry ~64). This is what bounds floods of MEMOIZE, of APPEND, of nested TUPLE1, and so on:
 * with the pickle's own bytes and the stack, a hostile pickle costs ~200 MB of memory at most.
 */
export const MAX_PICKLE_HEAP_BYTES = 64 << 20;
/** Text lines (protocol 0 INT, FLOAT, PUT/GET, GLOBAL) are short; BigInt parsing of a long one is slow. */
const MAX_LINE_BYTES = 4096;

const COST_DICT = 320;
const COST_DICT_ITEM = 64; // a key-value pair, or a memo entry (a Map entry)
const COST_OBJECT = 96; // a list, tuple or set, or a storage/tensor/global description
const COST_REF = 16; // an element of a list, tuple or set (8 bytes, plus room arrays keep to grow)
const COST_NUMBER = 16; // a boxed double or big int
const COST_STRING = 32; // plus its length

const describe = (v: PyValue): string =>
  v === null
    ? 'None'
    : v instanceof PyGlobal
      ? v.qualname
      : v instanceof PyDict
        ? 'a dict'
        : v instanceof PySet
          ? 'a set'
          : v instanceof TensorRef
            ? 'a tensor'
            : v instanceof StorageRef
              ? 'a storage'
              : Array.isArray(v)
                ? 'a list/tuple'
                : v instanceof Uint8Array
                  ? 'bytes'
                  : `a ${typeof v}`;

/**
 * Runs the pickle program in `data` from `start` up to its STOP opcode.
 * Returns the unpickled value and the offset just past STOP.
 */
export function unpickle(data: Uint8Array, start: number, where: string, persistentLoad: PersistentLoad): { value: PyValue; end: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  let pos = start;
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  let markedItems = 0; // items in the stacks saved by MARK
  const memo = new Map<number, PyValue>();
  let heap = 0;

  const fail = (message: string, at = pos): never => {
    throw new ConvzooError(`${where}: ${message} (pickle byte ${at})`, 'E_FORMAT', 'load');
  };
  const unsafe = (message: string, at: number): never => {
    throw new ConvzooError(
      `${where}: refused to unpickle: ${message} (pickle byte ${at}); only tensors and plain data load (like torch.load(weights_only=True))`,
      'E_UNSAFE_PICKLE',
      'load',
    );
  };
  const charge = (bytes: number): void => {
    heap += bytes;
    if (heap > MAX_PICKLE_HEAP_BYTES) fail(`the pickle builds more than ${MAX_PICKLE_HEAP_BYTES >> 20} MiB of objects (hostile or not a state dict)`);
  };
  const push = (v: PyValue): void => {
    if (stack.length + markedItems >= MAX_STACK_ITEMS) fail(`the pickle stack grows past ${MAX_STACK_ITEMS} items (hostile or not a state dict)`);
    stack.push(v);
  };
  // Tuples are frozen arrays, so that APPEND on one is caught like Python would.
  const tuple = (items: PyValue[]): PyValue[] => {
    charge(COST_OBJECT + COST_REF * items.length);
    return Object.freeze(items) as PyValue[];
  };
  const newDict = (): PyDict => {
    charge(COST_DICT);
    return new PyDict();
  };
  const memoize = (key: number, v: PyValue): void => {
    if (!memo.has(key)) charge(COST_DICT_ITEM);
    memo.set(key, v);
  };
  const need = (n: number): void => {
    if (pos + n > data.byteLength) throw new PickleTruncated(where);
  };
  const u8 = (): number => {
    need(1);
    return data[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(data.byteLength)) throw new PickleTruncated(where);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    charge(COST_STRING + n);
    return b;
  };
  const line = (): string => {
    const nl = data.subarray(0, pos + MAX_LINE_BYTES + 1).indexOf(0x0a, pos);
    if (nl < 0) {
      if (data.byteLength > pos + MAX_LINE_BYTES) fail(`text line longer than ${MAX_LINE_BYTES} bytes`);
      throw new PickleTruncated(where);
    }
    const s = latin1.decode(data.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const text = (n: number): string => {
    try {
      return utf8.decode(bytes(n));
    } catch (e) {
      if (e instanceof ConvzooError) throw e;
      return fail('invalid UTF-8 in a string');
    }
  };
  const pop = (): PyValue => (stack.length ? stack.pop()! : fail('stack underflow'));
  const top = (): PyValue => (stack.length ? stack[stack.length - 1] : fail('stack underflow'));
  // Note: `stack` is reassigned here, so callers must pop before touching `stack` again
  // (`stack.push(popMark())` would push onto the array just popped; `push(popMark())` is fine).
  const popMark = (): PyValue[] => {
    const items = stack;
    stack = marks.pop() ?? fail('MARK missing');
    markedItems -= stack.length;
    return items;
  };
  const mark = (): void => {
    if (marks.length >= MAX_MARKS) fail(`more than ${MAX_MARKS} MARKs open at once (hostile or not a state dict)`);
    charge(COST_OBJECT);
    marks.push(stack);
    markedItems += stack.length;
    stack = [];
  };
  const intOf = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  const long = (n: number): number | bigint => {
    if (n > MAX_LONG_BYTES) fail(`integer of ${n} bytes is too large`);
    const b = bytes(n); // charges COST_STRING + n: about what a big int takes
    if (n === 0) return 0;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[n - 1] & 0x80) v -= 1n << BigInt(8 * n); // two's complement
    return intOf(v);
  };
  const parseInt10 = (s: string): number | bigint => {
    if (!/^[+-]?\d+L?$/.test(s.trim())) fail(`bad integer literal '${s}'`);
    charge(COST_NUMBER);
    return intOf(BigInt(s.trim().replace(/L$/, '')));
  };
  const setItems = (dict: PyValue, items: PyValue[]): void => {
    if (!(dict instanceof PyDict)) return void unsafe(`SETITEM on ${describe(dict)}`, pos - 1);
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    charge(COST_DICT_ITEM * (items.length / 2));
    for (let i = 0; i < items.length; i += 2) dict.map.set(items[i], items[i + 1]);
  };
  const append = (list: PyValue, items: PyValue[]): void => {
    if (!Array.isArray(list) || Object.isFrozen(list)) return void unsafe(`APPEND on ${describe(list)}`, pos - 1);
    charge(COST_REF * items.length);
    for (const x of items) list.push(x);
  };
  const global = (module: string, name: string, at: number): PyGlobal => {
    const qualname = `${module}.${name}`;
    if (ALLOWED_GLOBALS.has(qualname)) {
      charge(COST_OBJECT);
      return new PyGlobal(qualname);
    }
    if (module === 'torch' && /^\w+Storage$/.test(name)) {
      // A real torch storage type, just not one convzoo has a dtype for (complex, quantized, ...).
      throw new ConvzooError(
        `${where}: tensors of storage type ${qualname} are not supported (supported: ${Object.keys(STORAGE_DTYPES).join(', ')})`,
        'E_DTYPE',
        'load',
      );
    }
    return unsafe(`global '${qualname}' is not allowed`, at);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        const proto = u8();
        if (proto > 5) fail(`unsupported pickle protocol ${proto}`, at);
        break;
      } // PROTO
      case 0x95:
        u64();
        break; // FRAME: a length hint for buffered readers; the data follows inline
      case 0x2e:
        return { value: pop(), end: pos }; // STOP (like Python, the top of the stack is the result)
      case 0x28:
        mark();
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        push(top());
        break; // DUP

      // ---- constants and numbers
      case 0x4e:
        push(null);
        break; // NONE
      case 0x88:
        push(true);
        break; // NEWTRUE
      case 0x89:
        push(false);
        break; // NEWFALSE
      case 0x4a:
        need(4);
        push(view.getInt32(pos, true));
        pos += 4;
        break; // BININT
      case 0x4b:
        push(u8());
        break; // BININT1
      case 0x4d:
        push(u16());
        break; // BININT2
      case 0x8a:
        push(long(u8()));
        break; // LONG1
      case 0x8b: {
        need(4);
        const n = view.getInt32(pos, true);
        pos += 4;
        if (n < 0) fail('negative LONG4 length', at);
        push(long(n));
        break;
      } // LONG4
      case 0x47:
        need(8);
        charge(COST_NUMBER);
        push(view.getFloat64(pos, false));
        pos += 8;
        break; // BINFLOAT (big-endian)
      case 0x49: {
        const s = line();
        push(s === '01' ? true : s === '00' ? false : parseInt10(s));
        break;
      } // INT
      case 0x4c:
        push(parseInt10(line()));
        break; // LONG
      case 0x46: {
        const s = line();
        const f = Number(s);
        if (Number.isNaN(f) && !/nan/i.test(s)) fail(`bad float literal '${s}'`, at);
        charge(COST_NUMBER);
        push(f);
        break;
      } // FLOAT

      // ---- strings and bytes
      case 0x58:
        push(text(u32()));
        break; // BINUNICODE
      case 0x8c:
        push(text(u8()));
        break; // SHORT_BINUNICODE
      case 0x8d:
        push(text(u64()));
        break; // BINUNICODE8
      case 0x54: {
        need(4);
        const n = view.getInt32(pos, true);
        pos += 4;
        if (n < 0) fail('negative BINSTRING length', at);
        push(latin1.decode(bytes(n)));
        break;
      } // BINSTRING (Python 2 str)
      case 0x55:
        push(latin1.decode(bytes(u8())));
        break; // SHORT_BINSTRING
      case 0x42:
        push(bytes(u32()).slice());
        break; // BINBYTES
      case 0x43:
        push(bytes(u8()).slice());
        break; // SHORT_BINBYTES
      case 0x8e:
      case 0x96:
        push(bytes(u64()).slice());
        break; // BINBYTES8, BYTEARRAY8

      // ---- containers
      case 0x29:
        push(tuple([]));
        break; // EMPTY_TUPLE
      case 0x74: {
        const t = tuple(popMark());
        push(t);
        break;
      } // TUPLE
      case 0x85:
        push(tuple([pop()]));
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        push(tuple([a, b]));
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        push(tuple([a, b, c]));
        break;
      } // TUPLE3
      case 0x5d:
        charge(COST_OBJECT);
        push([]);
        break; // EMPTY_LIST
      case 0x6c: {
        const l = popMark();
        charge(COST_OBJECT + COST_REF * l.length);
        push(l);
        break;
      } // LIST
      case 0x61: {
        const x = pop();
        append(top(), [x]);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        append(top(), items);
        break;
      } // APPENDS
      case 0x7d:
        push(newDict());
        break; // EMPTY_DICT
      case 0x64: {
        const d = newDict();
        setItems(d, popMark());
        push(d);
        break;
      } // DICT
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const items = popMark();
        setItems(top(), items);
        break;
      } // SETITEMS
      case 0x8f:
        charge(COST_OBJECT);
        push(new PySet());
        break; // EMPTY_SET
      case 0x90: {
        const items = popMark();
        const s = top();
        if (!(s instanceof PySet)) unsafe(`ADDITEMS on ${describe(s)}`, at);
        charge(COST_REF * items.length);
        for (const x of items) (s as PySet).items.push(x);
        break;
      } // ADDITEMS
      case 0x91: {
        const items = popMark();
        charge(COST_OBJECT + COST_REF * items.length);
        const s = new PySet();
        for (const x of items) s.items.push(x);
        push(s);
        break;
      } // FROZENSET

      // ---- memo
      case 0x71:
        memoize(u8(), top());
        break; // BINPUT
      case 0x72:
        memoize(u32(), top());
        break; // LONG_BINPUT
      case 0x70:
        memoize(Number(parseInt10(line())), top());
        break; // PUT
      case 0x94:
        memoize(memo.size, top());
        break; // MEMOIZE
      case 0x68:
      case 0x6a:
      case 0x67: {
        // BINGET, LONG_BINGET, GET
        const i = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(parseInt10(line()));
        if (!memo.has(i)) fail(`memo key ${i} missing`, at);
        push(memo.get(i)!);
        break;
      }

      // ---- the object-building opcodes, restricted to the allowed globals
      case 0x63: {
        const module = line();
        const name = line();
        push(global(module, name, at));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings', at);
        push(global(module as string, name as string, at));
        break;
      }
      case 0x51:
        charge(COST_OBJECT);
        push(persistentLoad(pop()));
        break; // BINPERSID
      case 0x52: {
        const args = pop();
        const fn = pop();
        charge(COST_OBJECT);
        push(reduce(fn, args, at));
        break;
      } // REDUCE
      case 0x62: {
        // BUILD: inst.__setstate__(state)
        const state = pop();
        const inst = top();
        // state_dict() returns an OrderedDict carrying a `_metadata` attribute (module versions):
        // accepted and dropped. Anything else would call arbitrary __setstate__ code in Python.
        if (!(inst instanceof PyDict && (state === null || state instanceof PyDict))) unsafe(`BUILD on ${describe(inst)}`, at);
        break;
      }
      default:
        if (REFUSED[op]) unsafe(`opcode ${REFUSED[op]} is not allowed`, at);
        fail(`invalid pickle opcode 0x${op.toString(16).padStart(2, '0')}`, at);
    }
  }

  function reduce(fn: PyValue, args: PyValue, at: number): PyValue {
    if (!(fn instanceof PyGlobal)) return unsafe(`REDUCE of ${describe(fn)}`, at);
    if (!Array.isArray(args)) return fail(`REDUCE of ${fn.qualname} with non-tuple arguments`, at);
    switch (fn.qualname) {
      case ORDERED_DICT: {
        const d = new PyDict();
        charge(COST_DICT);
        if (args.length === 1 && Array.isArray(args[0])) {
          charge(COST_DICT_ITEM * args[0].length);
          for (const kv of args[0]) {
            if (!Array.isArray(kv) || kv.length !== 2) fail('OrderedDict() items must be pairs', at);
            d.map.set((kv as PyValue[])[0], (kv as PyValue[])[1]);
          }
        } else if (args.length !== 0) fail('OrderedDict() takes no more than one argument', at);
        return d;
      }
      case REBUILD_TENSOR: {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        const [storage, offset, size, stride] = args;
        if (!(storage instanceof StorageRef)) return fail(`${REBUILD_TENSOR}: expected a storage, got ${describe(storage)}`, at);
        const shape = intList(size, 'size', at);
        const strides = intList(stride, 'stride', at);
        if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return fail(`${REBUILD_TENSOR}: bad storage offset`, at);
        if (shape.length !== strides.length) fail(`${REBUILD_TENSOR}: size and stride differ in length`, at);
        return new TensorRef(storage, offset, shape, strides);
      }
      case REBUILD_PARAMETER: {
        // (data, requires_grad, backward_hooks): a Parameter is its data here; weights load without grad.
        if (!(args[0] instanceof TensorRef)) return fail(`${REBUILD_PARAMETER}: expected a tensor`, at);
        return args[0];
      }
      default:
        return unsafe(`REDUCE of ${fn.qualname} (only OrderedDict and tensor rebuilds may be called)`, at);
    }
  }

  function intList(v: PyValue, what: string, at: number): number[] {
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
      return fail(`${REBUILD_TENSOR}: ${what} must be a tuple of non-negative integers`, at);
    }
    return v as number[];
  }
}
