"""Read .safetensors files without the safetensors package.

The format is plain data by design: an 8-byte little-endian header length, a JSON header
mapping each tensor name to {dtype, shape, data_offsets} (plus an optional string-to-string
`__metadata__`), then the raw little-endian tensor bytes, offsets counted from the end of
the header. Nothing here can run code, so the only work is checking that the header and the
data agree before trusting either.
"""

import collections
import json
import os
import struct
import sys

import torch

from .errors import ExportError, shown

DTYPES = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16}
_HEADER_LIMIT = 100 << 20  # no real header is anywhere near this; a bigger one is not a safetensors file


def _header_length(head, size):
    """(header length, None) for a plausible start of a safetensors file, else (None, why not)."""
    if len(head) < 9:
        return None, 'shorter than a header'
    (n,) = struct.unpack('<Q', head[:8])
    if n > _HEADER_LIMIT:
        return None, f'it declares a {n}-byte header, more than the {_HEADER_LIMIT >> 20} MiB any real file has'
    if n < 2 or 8 + n > size:
        return None, f'it declares a {n}-byte header in a {size}-byte file'
    if head[8:9] != b'{':
        return None, 'its header is not a JSON object'
    return n, None


def is_safetensors(path):
    """True when the file starts like a safetensors file (a plausible header length, then '{')."""
    try:
        with open(path, 'rb') as f:
            return _header_length(f.read(9), os.path.getsize(path))[0] is not None
    except OSError:
        return False


def _entry(name, value, data_size):
    if not isinstance(value, dict) or not {'dtype', 'shape', 'data_offsets'} <= value.keys():
        raise ExportError(f'corrupt safetensors header: entry {shown(name)} lacks dtype, shape or data_offsets')
    dtype, shape, offsets = value['dtype'], value['shape'], value['data_offsets']
    if dtype not in DTYPES:
        raise ExportError(f"tensor {shown(name)} has dtype {shown(repr(dtype), 20)}; only {', '.join(DTYPES)} are read")
    if not (isinstance(shape, list) and all(type(v) is int and v >= 0 for v in shape)):
        raise ExportError(f'corrupt safetensors header: tensor {shown(name)} has shape {shown(repr(shape), 40)}')
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(v) is int for v in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size):
        raise ExportError(f'corrupt safetensors header: tensor {shown(name)} has data offsets '
                          f'{shown(repr(offsets), 40)} '
                          f'outside the {data_size} data bytes (truncated download?)')
    numel = 1
    for v in shape:
        numel *= v
    itemsize = torch.empty(0, dtype=DTYPES[dtype]).element_size()
    if offsets[1] - offsets[0] != numel * itemsize:
        raise ExportError(f'corrupt safetensors header: tensor {shown(name)} of shape {shape} and dtype {dtype} '
                          f'does not fill its {offsets[1] - offsets[0]} bytes')
    return DTYPES[dtype], shape, offsets


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ExportError('corrupt safetensors header: a name appears twice')
    return dict(pairs)


def _parse_header(raw):
    try:
        header = json.loads(raw.decode('utf-8'), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as e:
        raise ExportError(f'the safetensors header is not valid JSON ({str(e)[:80]})') from None
    except RecursionError:
        raise ExportError('the safetensors header is not valid JSON (nested too deeply)') from None
    if not isinstance(header, dict):
        raise ExportError('the safetensors header is not a JSON object')
    meta = header.get('__metadata__', {})
    if not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise ExportError('corrupt safetensors header: __metadata__ must map strings to strings')
    return header


def _check_layout(entries, data_size):
    # As the format's reference reader requires: the tensors tile the data exactly, in offset order, with no
    # overlap (two names reading the same bytes) and no gap (bytes no tensor accounts for).
    end = 0
    for key, (_, _, (begin, stop)) in sorted(entries.items(), key=lambda item: tuple(item[1][2])):
        if begin != end:
            what = 'overlaps the tensor before it' if begin < end else 'leaves a gap before it'
            raise ExportError(f'corrupt safetensors header: tensor {shown(key)} {what} '
                              f'(offset {begin}, expected {end})')
        end = stop
    if end != data_size:
        raise ExportError(f'corrupt safetensors header: the tensors cover {end} of the {data_size} data bytes')


def load_safetensors(path, keep=None):
    """name -> CPU tensor (its stored dtype), in header order; `keep(name)` may skip tensors unread.

    Raises ExportError naming the problem for anything that is not a well-formed file.
    """
    name = os.path.basename(path)
    if sys.byteorder != 'little':  # torch.frombuffer reads native order; the file is little-endian
        raise ExportError('reading safetensors files needs a little-endian machine')
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(9)
            n, why = _header_length(head, size)
            if n is None:
                raise ExportError(f'{name} is not a safetensors file ({why})')
            f.seek(8)
            header = _parse_header(f.read(n))
            data_start, data_size = 8 + n, size - 8 - n
            entries = {key: _entry(key, value, data_size) for key, value in header.items() if key != '__metadata__'}
            _check_layout(entries, data_size)
            out = collections.OrderedDict()
            for key, (dtype, shape, (begin, end)) in entries.items():
                if keep is not None and not keep(key):
                    continue
                buf = bytearray(end - begin)
                f.seek(data_start + begin)
                if f.readinto(buf) != len(buf):
                    raise ExportError(f'{name} is truncated; download it again')
                flat = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
                out[key] = flat.reshape(shape)
    except ExportError as e:
        raise ExportError(str(e) if str(e).startswith(name) else f'{name}: {e}') from None
    except OSError as e:
        raise ExportError(f'cannot read {path}: {e.strerror}') from None
    return out
