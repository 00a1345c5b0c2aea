#!/usr/bin/python3
"""Checks ONNX files with the onnx package's own checker, the reference for convzoo's ONNX writer.

  /usr/bin/python3 tools/onnx_check.py MODEL.onnx [MORE.onnx ...]

For each file, one JSON line on stdout:
  {"path", "ok", "error"?, "irVersion", "opset", "externalData", "inferredOutputShapes"}
ok is true when onnx.checker.check_model with full_check (which includes shape inference with type
checks in strict mode) and onnx.shape_inference.infer_shapes(check_type=True, strict_mode=True) both
pass; error is the first failure's message. opset is the default domain's version. inferredOutputShapes
maps each graph output to the shape that shape inference derives for it on its own (the declared output
shapes are cleared first): a number per fixed dimension, a string per symbolic one, null where unknown.

Exit status: 0 when every file was examined, whatever the verdicts; 2 on a usage error; 3 when the onnx
package cannot be imported (Debian/Ubuntu: apt install python3-onnx).
"""
import json
import os
import sys
import tempfile

USAGE = 'usage: onnx_check.py MODEL.onnx [MORE.onnx ...]'


def dims_of(value_info):
    """The shape of a ValueInfoProto: int, str or None per dimension; None when the rank is unknown."""
    tensor = value_info.type.tensor_type
    if not tensor.HasField('shape'):
        return None
    out = []
    for d in tensor.shape.dim:
        which = d.WhichOneof('value')
        out.append(d.dim_value if which == 'dim_value' else d.dim_param if which == 'dim_param' else None)
    return out


def uses_external_data(model, onnx):
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def check_file(path, onnx):
    result = {'path': path, 'ok': False}
    try:
        # Without the external data: enough for the header fields and for shape inference, which reads
        # initializers' dims, not their values.
        header = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - any failure to parse is the verdict
        result['error'] = f'load: {e}'
        return result
    result['irVersion'] = header.ir_version
    result['opset'] = next((o.version for o in header.opset_import if o.domain in ('', 'ai.onnx')), None)
    external = uses_external_data(header, onnx)
    result['externalData'] = external
    try:
        if external:
            # The path form lets the C++ checker find (and vet) the data files. onnx 1.12's
            # check_model(path, full_check=True) would write the inferred model over the file, so the
            # strict shape inference runs here into a temporary file instead.
            onnx.checker.check_model(path)
            with tempfile.TemporaryDirectory() as tmp:
                onnx.shape_inference.infer_shapes_path(path, os.path.join(tmp, 'inferred.onnx'), check_type=True, strict_mode=True)
        else:
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
            onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as e:  # noqa: BLE001 - the checker's message is the verdict
        result['error'] = f'{type(e).__name__}: {e}'
        return result
    # What inference derives for the outputs by itself, not what the file declares.
    probe = onnx.ModelProto()
    probe.CopyFrom(header)
    for output in probe.graph.output:
        output.type.tensor_type.ClearField('shape')
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, check_type=True)
        result['inferredOutputShapes'] = {o.name: dims_of(o) for o in inferred.graph.output}
    except Exception as e:  # noqa: BLE001
        result['error'] = f'shape inference of the outputs: {type(e).__name__}: {e}'
        return result
    result['ok'] = True
    return result


def main(argv):
    if len(argv) < 2 or any(a in ('-h', '--help') for a in argv[1:]):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        import onnx
    except ImportError as e:
        print(f'onnx_check.py: cannot import onnx ({e}); Debian/Ubuntu: apt install python3-onnx', file=sys.stderr)
        return 3
    for path in argv[1:]:
        print(json.dumps(check_file(path, onnx)), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
