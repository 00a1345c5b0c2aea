"""Reference weight files for test/io.test.ts.

    /usr/bin/python3 tools/make_weight_fixtures.py OUT_DIR
        writes .pth files with torch.save (zip and legacy formats), hand-made pickles that a
        weights-only loader must refuse, broken archives, a safetensors file written by hand
        (struct + json), and OUT_DIR/expected.json describing what each file holds.

    /usr/bin/python3 tools/make_weight_fixtures.py --read-safetensors FILE
        prints FILE's tensors as JSON, decoded with struct alone: an independent check that the
        files convzoo writes are valid safetensors.
"""
import collections
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib

# ---- an independent safetensors reader (no torch) -------------------------------------------

ST_FORMATS = {'F64': 'd', 'F32': 'f', 'I64': 'q', 'I32': 'i', 'I16': 'h', 'I8': 'b', 'U8': 'B', 'BOOL': '?'}


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {'__metadata__': header.pop('__metadata__', None), 'tensors': {}}
    for name, info in header.items():
        b, e = info['data_offsets']
        chunk = data[b:e]
        dt = info['dtype']
        if dt in ST_FORMATS:
            count = len(chunk) // struct.calcsize(ST_FORMATS[dt])
            values = list(struct.unpack('<%d%s' % (count, ST_FORMATS[dt]), chunk))
        elif dt == 'F16':
            values = list(struct.unpack('<%de' % (len(chunk) // 2), chunk))
        elif dt == 'BF16':  # the high half of a float32
            halves = struct.unpack('<%dH' % (len(chunk) // 2), chunk)
            values = [struct.unpack('<f', struct.pack('<I', h << 16))[0] for h in halves]
        else:
            raise ValueError('unknown dtype ' + dt)
        if dt == 'I64':
            values = [str(v) for v in values]
        elif dt == 'BOOL':
            values = [int(v) for v in values]
        out['tensors'][name] = {'dtype': dt, 'shape': info['shape'], 'values': values}
    return out


if len(sys.argv) == 3 and sys.argv[1] == '--read-safetensors':
    json.dump(read_safetensors(sys.argv[2]), sys.stdout)
    sys.exit(0)

# ---- fixtures -------------------------------------------------------------------------------

import torch  # noqa: E402  (the reader above must not need torch)
import torchvision  # noqa: E402

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
expected = {}
P = lambda name: os.path.join(out_dir, name)  # noqa: E731

DTYPE_NAMES = {
    torch.float32: 'float32', torch.float64: 'float64', torch.float16: 'float16', torch.bfloat16: 'bfloat16',
    torch.int64: 'int64', torch.int32: 'int32', torch.int16: 'int16', torch.int8: 'int8', torch.uint8: 'uint8',
    torch.bool: 'bool',
}


def describe(t):
    """What the loader must reproduce: dtype, shape, strides and the values in logical order."""
    flat = t.flatten()
    if t.dtype == torch.int64:
        values = [str(v) for v in flat.tolist()]  # beyond 2^53: compared as BigInt
    elif t.dtype == torch.bool:
        values = [int(v) for v in flat.tolist()]
    elif t.dtype in (torch.float16, torch.bfloat16):
        values = flat.float().tolist()
    else:
        values = flat.tolist()
    return {'dtype': DTYPE_NAMES[t.dtype], 'shape': list(t.shape), 'stride': list(t.stride()),
            'offset': t.storage_offset(), 'values': values}


def describe_all(d):
    return {k: describe(v) for k, v in d.items()}


# Every dtype, plus a 0-d and an empty tensor, in an OrderedDict carrying `_metadata` (as
# Module.state_dict() returns it: that makes the pickle BUILD the dict's attributes).
dtypes = collections.OrderedDict()
dtypes['f32'] = torch.tensor([[1.5, -2.25, 3.0e-8], [1e30, -0.0, 7.0]], dtype=torch.float32)
dtypes['f64'] = torch.tensor([[1 / 3, -2e-300, 1e300], [0.1, 2.0, -7.5]], dtype=torch.float64)
dtypes['f16'] = torch.tensor([[0.5, -2.0, 65504.0], [1e-4, 3.14159, -0.0]], dtype=torch.float16)
dtypes['bf16'] = torch.tensor([[0.5, -2.0, 3.0e38], [1e-4, 3.14159, 1.0]], dtype=torch.bfloat16)
dtypes['i64'] = torch.tensor([[-(2 ** 62), 2 ** 62 + 1, -1], [0, 2 ** 53 + 1, 42]], dtype=torch.int64)
dtypes['i32'] = torch.tensor([[-(2 ** 31), 2 ** 31 - 1, 0], [5, -5, 7]], dtype=torch.int32)
dtypes['i16'] = torch.tensor([[-(2 ** 15), 2 ** 15 - 1, 0], [5, -5, 7]], dtype=torch.int16)
dtypes['i8'] = torch.tensor([[-128, 127, 0], [5, -5, 7]], dtype=torch.int8)
dtypes['u8'] = torch.tensor([[0, 255, 1], [128, 7, 9]], dtype=torch.uint8)
dtypes['bool'] = torch.tensor([[True, False, True], [False, False, True]])
dtypes['scalar'] = torch.tensor(3.5)
dtypes['empty'] = torch.zeros(0, 3)
dtypes._metadata = collections.OrderedDict([('', {'version': 1})])
torch.save(dtypes, P('dtypes.pth'))
expected['dtypes'] = describe_all(dtypes)

# Views: tensors sharing one storage, at offsets, transposed, plus one tensor saved under two keys.
base = torch.arange(12, dtype=torch.float32).view(3, 4)
tied = torch.tensor([1.0, 2.0, 3.0])
views = collections.OrderedDict(
    base=base, row=base[1], colT=base.t(), cols=base[:, 1:3], other=torch.ones(2, 2), tied_a=tied, tied_b=tied)
torch.save(views, P('views.pth'))
expected['views'] = describe_all(views)

# The legacy (pre-1.6) stream format, with both of the above.
legacy = collections.OrderedDict(list(dtypes.items()) + list(views.items()))
torch.save(legacy, P('legacy.pth'), _use_new_zipfile_serialization=False)
expected['legacy'] = describe_all(legacy)

# A training checkpoint wrapping the weights, with non-tensor values around them.
inner = collections.OrderedDict([('conv.weight', torch.randn(2, 1, 3, 3)), ('bn.running_mean', torch.zeros(2)),
                                 ('bn.num_batches_tracked', torch.tensor(7))])
torch.save({'state_dict': inner, 'epoch': 3, 'arch': 'tiny', 'best_acc': 0.5, 'none': None, 'flags': [True, False],
            'big': 2 ** 70, 'pair': (1, 'a')}, P('nested.pth'))
expected['nested'] = describe_all(inner)

# Several tensor-holding parts: flattened with dotted keys unless a key is chosen.
model = collections.OrderedDict([('fc.weight', torch.randn(3, 2)), ('fc.bias', torch.randn(3))])
ema = collections.OrderedDict([('fc.weight', torch.randn(3, 2)), ('fc.bias', torch.randn(3))])
optim_sd = {'state': {0: {'step': torch.tensor(5.0), 'exp_avg': torch.randn(3, 2)}},
            'param_groups': [{'lr': 0.1, 'params': [0]}]}
torch.save({'model': model, 'model_ema': ema, 'optimizer': optim_sd, 'epoch': 5}, P('multi.pth'))
expected['multi'] = {
    'model': describe_all(model), 'model_ema': describe_all(ema),
    'optimizer': {'state.0.step': describe(optim_sd['state'][0]['step']),
                  'state.0.exp_avg': describe(optim_sd['state'][0]['exp_avg'])}}

torch.save(torch.arange(4, dtype=torch.int32), P('bare.pth'))
expected['bare'] = describe(torch.arange(4, dtype=torch.int32))

# A real network's state_dict, summarised (sum and a position-weighted sum catch permutations).
torch.manual_seed(0)
net = torchvision.models.resnet18()
sd = net.state_dict()
torch.save(sd, P('resnet18.pth'))


def summary(t):
    d = t.double().flatten()
    w = (torch.arange(d.numel(), dtype=torch.float64) % 7) + 1
    return {'dtype': DTYPE_NAMES[t.dtype], 'shape': list(t.shape), 'sum': d.sum().item(), 'wsum': (d * w).sum().item()}


expected['resnet18'] = {'keys': list(sd.keys()), 'tensors': {k: summary(v) for k, v in sd.items()}}


# ---- malicious and broken files ---------------------------------------------------------------

class EvilSystem:
    def __reduce__(self):
        return (os.system, ('touch ' + P('PWNED'),))


class EvilStorageCall:
    def __reduce__(self):
        return (torch.FloatStorage, (3,))


torch.save({'w': torch.ones(2), 'evil': EvilSystem()}, P('evil_system.pth'))
torch.save({'w': torch.ones(2), 'evil': EvilStorageCall()}, P('evil_reduce.pth'))
torch.save({'z': torch.zeros(2, dtype=torch.complex64)}, P('complex.pth'))


def raw_pth(name, program, storages=None):
    """A torch-style zip holding a hand-written pickle program (and optional storages)."""
    with zipfile.ZipFile(P(name), 'w', zipfile.ZIP_STORED) as z:
        z.writestr('archive/data.pkl', program)
        for key, data in (storages or {}).items():
            z.writestr('archive/data/' + key, data)
        z.writestr('archive/version', '3\n')


def persid_storage(key, numel):
    # ('storage', torch.FloatStorage, key, 'cpu', numel) BINPERSID
    return (b'(' + pickle.SHORT_BINUNICODE + b'\x07storage' + b'ctorch\nFloatStorage\n'
            + pickle.SHORT_BINUNICODE + bytes([len(key)]) + key.encode() + pickle.SHORT_BINUNICODE + b'\x03cpu'
            + pickle.BININT1 + bytes([numel]) + pickle.TUPLE + pickle.BINPERSID)


def rebuild_tensor(key, numel):
    # _rebuild_tensor_v2(storage, 0, (numel,), (1,), False, OrderedDict())
    return (b'ctorch._utils\n_rebuild_tensor_v2\n(' + persid_storage(key, numel) + pickle.BININT1 + b'\x00'
            + pickle.BININT1 + bytes([numel]) + pickle.TUPLE1 + pickle.BININT1 + b'\x01' + pickle.TUPLE1
            + pickle.NEWFALSE + b'ccollections\nOrderedDict\n' + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.TUPLE
            + pickle.REDUCE)


two_floats = struct.pack('<2f', 1.0, 2.0)
# BUILD on a tensor (in Python: the tensor's __setstate__ with attacker-chosen state).
raw_pth('evil_build.pth', b'\x80\x02' + rebuild_tensor('0', 2) + pickle.EMPTY_DICT + pickle.BUILD + pickle.STOP,
        {'0': two_floats})
# NEWOBJ (cls.__new__(cls, *args)) even of an allowed class.
raw_pth('evil_newobj.pth', b'\x80\x02ccollections\nOrderedDict\n' + pickle.EMPTY_TUPLE + pickle.NEWOBJ + pickle.STOP)
# STACK_GLOBAL naming builtins.eval, called with REDUCE.
raw_pth('evil_stack_global.pth', b'\x80\x04' + pickle.SHORT_BINUNICODE + b'\x08builtins' + pickle.SHORT_BINUNICODE
        + b'\x04eval' + pickle.STACK_GLOBAL + pickle.SHORT_BINUNICODE + b'\x011' + pickle.TUPLE1 + pickle.REDUCE
        + pickle.STOP)
# A view reaching past the end of its storage (2 floats stored, 3 claimed by the tensor).
raw_pth('bad_view.pth', b'\x80\x02' + rebuild_tensor('0', 2).replace(
    pickle.BININT1 + b'\x00' + pickle.BININT1 + b'\x02' + pickle.TUPLE1,
    pickle.BININT1 + b'\x00' + pickle.BININT1 + b'\x03' + pickle.TUPLE1) + pickle.STOP, {'0': two_floats})
# A well-formed hand-made file, to show the above fail for their reason alone.
raw_pth('handmade_ok.pth', b'\x80\x02' + rebuild_tensor('0', 2) + pickle.STOP, {'0': two_floats})

with open(P('dtypes.pth'), 'rb') as f:
    dtypes_bytes = f.read()
with open(P('truncated.pth'), 'wb') as f:
    f.write(dtypes_bytes[:len(dtypes_bytes) * 6 // 10])
with open(P('legacy.pth'), 'rb') as f:
    legacy_bytes = f.read()
with open(P('legacy_truncated.pth'), 'wb') as f:
    f.write(legacy_bytes[:len(legacy_bytes) - 20])

# One flipped byte in a storage: the CRC-32 check must catch it.
with zipfile.ZipFile(P('dtypes.pth')) as z:
    info = z.getinfo('dtypes/data/0')
    entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
# The data starts after the local header, whose extra field (torch's alignment padding) may differ
# from the central directory's.
with open(P('dtypes.pth'), 'rb') as f:
    f.seek(info.header_offset + 28)
    (local_extra,) = struct.unpack('<H', f.read(2))
data_start = info.header_offset + 30 + len(info.filename.encode()) + local_extra
corrupt = bytearray(dtypes_bytes)
corrupt[data_start] ^= 0xFF
with open(P('corrupt.pth'), 'wb') as f:
    f.write(bytes(corrupt))

# The same archive re-packed with deflate, and re-packed as zip64 (what torch writes past 4 GiB).
with zipfile.ZipFile(P('deflated.pth'), 'w', zipfile.ZIP_DEFLATED) as z:
    for name, data in entries:
        z.writestr(name, data)


def write_zip64(path, entries):
    """Every size and offset in zip64 extra fields, with a zip64 end record and locator."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        nb = name.encode()
        crc = zlib.crc32(data)
        offset = len(out)
        out += struct.pack('<IHHHHHIIIHH', 0x04034b50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb), 20)
        out += nb + struct.pack('<HHQQ', 1, 16, len(data), len(data)) + data
        central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(nb), 28, 0, 0, 0, 0, 0xFFFFFFFF)
        central += nb + struct.pack('<HHQQQ', 1, 24, len(data), len(data), offset)
    cd_offset = len(out)
    out += central
    z64_offset = len(out)
    out += struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, len(entries), len(entries), len(central), cd_offset)
    out += struct.pack('<IIQI', 0x07064b50, 0, z64_offset, 1)
    out += struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, 'wb') as f:
        f.write(bytes(out))


write_zip64(P('zip64.pth'), entries)
# Both variants must be real archives: Python's zipfile reads them back intact.
for name in ('deflated.pth', 'zip64.pth'):
    with zipfile.ZipFile(P(name)) as z:
        assert [(i.filename, z.read(i.filename)) for i in z.infolist()] == entries, name

# ---- safetensors written by hand ---------------------------------------------------------------

hand = collections.OrderedDict()
hand['weight'] = torch.randn(2, 3)
hand['ids'] = torch.tensor([-(2 ** 60), 3, 9], dtype=torch.int64)
hand['half'] = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float16)
hand['brain'] = torch.tensor([1.0, -3.0], dtype=torch.bfloat16)
hand['mask'] = torch.tensor([True, False, True])
hand['scalar'] = torch.tensor(2.5, dtype=torch.float64)
hand['empty'] = torch.zeros(0, 4)
ST_NAMES = {torch.float32: 'F32', torch.float64: 'F64', torch.float16: 'F16', torch.bfloat16: 'BF16',
            torch.int64: 'I64', torch.bool: 'BOOL'}
header = {'__metadata__': {'source': 'hand-written', 'format': 'pt'}}
blob = bytearray()
for name, t in hand.items():
    data = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    header[name] = {'dtype': ST_NAMES[t.dtype], 'shape': list(t.shape), 'data_offsets': [len(blob), len(blob) + len(data)]}
    blob += data
hjson = json.dumps(header).encode()
with open(P('hand.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(hjson)) + hjson + bytes(blob))
expected['hand'] = {'metadata': header['__metadata__'], 'tensors': describe_all(hand)}

with open(P('expected.json'), 'w') as f:
    json.dump(expected, f)
