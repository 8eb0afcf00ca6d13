"""Read EDM2 network pickles (and torch.save checkpoints) without running anything they contain.

EDM2 pickles (NVlabs/edm2 training snapshots and post-hoc EMA reconstructions) embed the
Python source of their network classes and, read with plain `pickle.load`, `exec` it. Here a
restricted unpickler resolves only the handful of globals such a file legitimately names, each
to a function of ours that builds plain data: persistent objects become `PersistentObject`
records (class name + state), tensors are rebuilt from the raw storage bytes by our own parser
of torch's legacy serialization format. Any other global is refused before it is looked up.
"""

import _compat_pickle
import collections
import hashlib
import inspect
import io
import mmap
import os
import pickle
import struct
import zipfile

import numpy as np
import torch

from . import edm2


class ExportError(Exception):
    """A problem with the user's input, as one line that names it and the fix."""


def shown(text, limit=80):
    """Text from a file, fit for a one-line message: control characters escaped, at most `limit` characters."""
    text = str(text).encode('unicode_escape').decode('ascii')
    return text if len(text) <= limit else text[:limit - 3] + '...'


class _Refusal(ExportError):
    """The file names something that is never loaded; the message says what."""


def _global_name(module, name):
    # Protocol-2 pickles spell Python 3 modules by their Python 2 names (subprocess -> commands).
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return shown(f'{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}')


# ----------------------------------------------------------------------------
# What the globals of an EDM2 pickle resolve to.


class EasyDict(dict):
    """dnnlib.util.EasyDict: a dict whose keys read as attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class PersistentObject:
    """An object pickled by torch_utils.persistence: its class name and its state, no code."""

    def __init__(self, class_name, state, module_src_sha256):
        self.class_name = class_name
        self.state = state
        self.module_src_sha256 = module_src_sha256

    def __repr__(self):
        return f'PersistentObject({self.class_name!r})'


class ModuleDictStub:
    """torch.nn.ModuleDict, reduced to the state that pickle's BUILD hands it."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise ExportError('corrupt pickle: a ModuleDict has no state dict')
        self.state = state

    def __repr__(self):
        return 'ModuleDictStub()'


def _reconstruct_persistent_obj(meta):
    # Stands in for torch_utils.persistence._reconstruct_persistent_obj, which would exec
    # meta['module_src']; the source is only hashed, for diagnostics.
    if not isinstance(meta, dict) or not {'type', 'version', 'class_name', 'state'} <= meta.keys():
        raise ExportError('corrupt pickle: malformed persistent-object record')
    if meta['version'] != 6 or meta['type'] != 'class':
        raise ExportError(f"unsupported torch_utils.persistence record (version {meta['version']!r}, "
                          f"type {meta['type']!r}); only version 6 class records are known")
    src = meta.get('module_src')
    digest = hashlib.sha256(src.encode('utf-8')).hexdigest() if isinstance(src, str) else None
    state = meta['state'] if meta['state'] is not None else {}
    if not isinstance(meta['class_name'], str) or not isinstance(state, dict):
        raise ExportError('corrupt pickle: malformed persistent-object record')
    return PersistentObject(meta['class_name'], state, digest)


# -- Tensors ---------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    'HalfStorage': torch.float16, 'FloatStorage': torch.float32, 'DoubleStorage': torch.float64,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool, 'UntypedStorage': torch.uint8,
}

_TORCH_DTYPES = {name: getattr(torch, name) for name in (
    'float16', 'float32', 'float64', 'bfloat16', 'half', 'float', 'double',
    'int8', 'int16', 'int32', 'int64', 'uint8', 'bool')}


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _StorageRecord:
    def __init__(self, key, dtype, numel, view):
        self.key, self.dtype, self.numel, self.view = key, dtype, numel, view


class Storage:
    """A tensor storage as a flat 1-D tensor of its dtype."""

    def __init__(self, flat):
        self.flat = flat


def _is_location(location):
    # Where torch.save found the storage: 'cpu', 'cuda', 'cuda:1', 'mps'; it is never evaluated, only checked.
    return isinstance(location, str) and (location in ('cpu', 'cuda', 'mps') or (
        location.startswith('cuda:') and location[5:].isdigit() and len(location) < 12))


class _LegacyStorageUnpickler(pickle.Unpickler):
    # The pickles inside a legacy torch.save blob name nothing but the storage classes.
    def find_class(self, module, name):
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise _Refusal(f"a tensor record references the Python global '{_global_name(module, name)}', which "
                       f'EDM2 network pickles never contain (nothing in the file was executed)')

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != 'storage'
                or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str)
                or not _is_location(pid[3]) or not isinstance(pid[4], int) or pid[4] < 0):
            raise ExportError('corrupt pickle: malformed tensor storage record')
        view = pid[5] if len(pid) == 6 else None
        if view is not None and not (isinstance(view, tuple) and len(view) == 3
                                     and all(isinstance(v, int) for v in view[1:])):
            raise ExportError('corrupt pickle: malformed tensor storage view')
        return _StorageRecord(pid[2], pid[1].dtype, pid[4], view)


def _load_from_bytes(blob):
    """Parse the legacy torch.save format that torch.storage._load_from_bytes would torch.load.

    Layout: pickled magic number, protocol version, system info; a pickle whose only content
    is a persistent-id record for the storage; the pickled list of storage keys; then per key
    an int64 element count and the raw little-endian data.
    """
    if not isinstance(blob, (bytes, bytearray)):
        raise ExportError('corrupt pickle: tensor data is not a byte string')
    f = io.BytesIO(blob)

    def load():
        return _LegacyStorageUnpickler(f).load()

    try:
        if load() != _LEGACY_MAGIC or load() != _LEGACY_PROTOCOL:
            raise ExportError('corrupt pickle: tensor data lacks the torch.save legacy header')
        sys_info = load()
        if not isinstance(sys_info, dict) or sys_info.get('little_endian') is not True:
            raise ExportError('unsupported tensor data: not written on a little-endian machine')
        root = load()
        keys = load()
    except (EOFError, pickle.UnpicklingError, ValueError, struct.error) as e:
        raise ExportError(f'corrupt pickle: unreadable tensor data ({e})') from None
    if not isinstance(root, _StorageRecord) or not isinstance(keys, list) or root.key not in keys:
        raise ExportError('corrupt pickle: tensor data holds no storage')
    if len(keys) != 1:
        raise ExportError('corrupt pickle: tensor data holds more than one storage')

    head = f.read(8)
    if len(head) != 8:
        raise ExportError('truncated tensor data in pickle')
    (count,) = struct.unpack('<q', head)
    itemsize = torch.empty(0, dtype=root.dtype).element_size()
    if count != root.numel:
        raise ExportError('corrupt pickle: tensor storage size disagrees with its record')
    # Checked before allocating: a record may declare 10^12 elements in a few bytes.
    if count * itemsize > len(blob) - f.tell():
        raise ExportError('truncated tensor data in pickle')
    data = bytearray(count * itemsize)
    if f.readinto(data) != len(data):
        raise ExportError('truncated tensor data in pickle')
    flat = torch.frombuffer(data, dtype=root.dtype) if count else torch.empty(0, dtype=root.dtype)
    if root.view is not None:
        _, offset, size = root.view
        if offset < 0 or size < 0 or offset + size > count:
            raise ExportError('corrupt pickle: tensor storage view out of bounds')
        flat = flat[offset:offset + size]
    return Storage(flat)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    if not isinstance(storage, Storage):
        raise ExportError('corrupt pickle: tensor without storage')
    if not (isinstance(storage_offset, int) and isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
            and len(size) == len(stride) and all(isinstance(v, int) for v in (*size, *stride))):
        raise ExportError('corrupt pickle: malformed tensor shape')
    if backward_hooks or metadata:
        raise ExportError('unsupported pickle: tensor carries hooks or extra metadata')
    if storage_offset < 0 or any(v < 0 for v in (*size, *stride)):
        raise ExportError('corrupt pickle: negative tensor offset, size or stride')
    numel = storage.flat.numel()
    if all(s > 0 for s in size):
        last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= numel:
            raise ExportError('corrupt pickle: tensor extends past its storage')
    return storage.flat.as_strided(tuple(size), tuple(stride), storage_offset)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    if not isinstance(data, torch.Tensor):
        raise ExportError('corrupt pickle: parameter without tensor data')
    if backward_hooks:
        raise ExportError('unsupported pickle: parameter carries hooks')
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    # The state is Python attributes set on the Parameter object; weights don't need them.
    return _rebuild_parameter(data, requires_grad, backward_hooks)


class _TensorType:
    pass


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_parameter, _rebuild_parameter_with_state) \
            or not isinstance(new_type, _TensorType) or not isinstance(args, tuple):
        raise ExportError('unsupported pickle: tensor of an unknown subclass')
    return func(*args)


# -- NumPy arrays (the VAE encoder's scale and bias) --------------------------------


class _NDArrayType:
    pass


class _DTypeSpec:
    """numpy.dtype(descr, align, copy) plus the byte order that BUILD sets."""

    def __init__(self, descr):
        self.descr = descr
        self.byteorder = '='

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ('<', '>', '|', '='):
            raise ExportError('corrupt pickle: malformed numpy dtype')
        if any(v is not None for v in state[2:5]):
            raise ExportError('unsupported pickle: structured numpy arrays are not read')
        self.byteorder = state[1]

    def dtype(self):
        return np.dtype(self.descr).newbyteorder(self.byteorder)


def _np_dtype(descr, align=False, copy=False):
    # Plain numbers only: an object dtype would make the array's data a list of pickled objects.
    try:
        ok = isinstance(descr, str) and np.dtype(descr).kind in 'biufc'
    except TypeError:
        ok = False
    if not ok:
        raise ExportError(f'unsupported pickle: numpy dtype {descr!r}')
    return _DTypeSpec(descr)


class PickledArray(np.ndarray):
    """ndarray that validates the state numpy's BUILD hands it before accepting it."""

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _DTypeSpec)
                and isinstance(state[1], tuple) and all(isinstance(v, int) and v >= 0 for v in state[1])
                and isinstance(state[4], bytes)):
            raise ExportError('corrupt pickle: malformed numpy array')
        version, shape, spec, fortran, raw = state
        dtype = spec.dtype()
        if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise ExportError('corrupt pickle: numpy array data has the wrong size')
        super().__setstate__((version, shape, dtype, bool(fortran), raw))


def _np_reconstruct(cls, shape, typecode):
    if not isinstance(cls, _NDArrayType):
        raise ExportError('unsupported pickle: numpy object of an unknown class')
    return np.ndarray.__new__(PickledArray, (0,), np.uint8)


def _np_scalar(spec, raw):
    if not isinstance(spec, _DTypeSpec) or not isinstance(raw, bytes) or len(raw) != spec.dtype().itemsize:
        raise ExportError('corrupt pickle: malformed numpy scalar')
    return np.frombuffer(raw, dtype=spec.dtype())[0]


def _codecs_encode(text, encoding='utf-8'):
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise ExportError('unsupported pickle: unexpected _codecs.encode call')
    return text.encode('latin1')


_PLAIN = (str, int, float, bool, type(None), bytes)


def _is_plain_key(key):
    return type(key) in _PLAIN or (type(key) is tuple and len(key) <= 16 and all(type(v) in _PLAIN for v in key))


def _plain_set(items=()):
    # builtins.set as a pickle may call it: on a list of plain members (see _RestrictedUnpickler._check_keys).
    if not (isinstance(items, (list, tuple)) and all(_is_plain_key(k) for k in items)):
        raise _Refusal('it builds a set of nested values (hashing them could take unbounded time)')
    return set(items)


def _plain_frozenset(items=()):
    return frozenset(_plain_set(items))


_GLOBALS = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent_obj,
    ('dnnlib.util', 'EasyDict'): EasyDict,
    ('dnnlib', 'EasyDict'): EasyDict,
    ('torch.nn.modules.container', 'ModuleDict'): ModuleDictStub,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('builtins', 'set'): _plain_set, ('__builtin__', 'set'): _plain_set,
    ('builtins', 'frozenset'): _plain_frozenset, ('__builtin__', 'frozenset'): _plain_frozenset,
    ('_codecs', 'encode'): _codecs_encode,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter_with_state,
    ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
    ('torch', 'Tensor'): _TensorType(),
    ('torch.nn.parameter', 'Parameter'): _TensorType(),
    ('torch.storage', '_load_from_bytes'): _load_from_bytes,
    ('numpy', 'ndarray'): _NDArrayType(),
    ('numpy', 'dtype'): _np_dtype,
    ('numpy.core.multiarray', '_reconstruct'): _np_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _np_reconstruct,
    ('numpy.core.multiarray', 'scalar'): _np_scalar,
    ('numpy._core.multiarray', 'scalar'): _np_scalar,
}
_GLOBALS.update({('torch', name): dtype for name, dtype in _TORCH_DTYPES.items()})


class _RestrictedUnpickler(pickle._Unpickler):
    """pickle's own pure-Python unpickler with a whitelist, so that every opcode that calls or changes an object
    can be checked (the C unpickler checks only globals):

    - globals come from the table `_GLOBALS` only, by exact (module, name): no dotted attribute paths;
    - BUILD updates only objects of `_BUILD_TYPES` that this load created, never a class or function of the
      table itself (which would change the reader for every later file in the process);
    - NEWOBJ creates only `_NEWOBJ_TYPES`; INST and OBJ (protocol 0/1 calls) are refused.
    """

    _GLOBALS = {}
    _BUILD_TYPES = ()
    _NEWOBJ_TYPES = ()
    _WHAT = 'EDM2 network pickles'

    def find_class(self, module, name):
        target = self._GLOBALS.get((module, name))
        if target is None:
            raise _Refusal(f"it references the Python global '{_global_name(module, name)}', which {self._WHAT} "
                           f'never contain (nothing in the file was executed)')
        return target

    def _refuse(self, what):
        raise _Refusal(f'it {what}, which {self._WHAT} never do (nothing in the file was executed)')

    def _load_build(self):
        inst, state = self.stack[-2], self.stack[-1]
        if type(inst) not in self._BUILD_TYPES:
            self._refuse(f'sets the state of {_describe_object(inst)} (BUILD)')
        if not hasattr(inst, '__setstate__') and not (isinstance(state, dict) and all(
                isinstance(k, str) and not k.startswith('__') for k in state)):
            self._refuse(f'sets attributes of {_describe_object(inst)} other than its plain data (BUILD)')
        pickle._Unpickler.load_build(self)

    def _check_newobj(self, cls):
        if not (isinstance(cls, type) and cls in self._NEWOBJ_TYPES):
            self._refuse(f'creates {_describe_object(cls)} (NEWOBJ)')

    def _load_newobj(self):
        self._check_newobj(self.stack[-2])
        pickle._Unpickler.load_newobj(self)

    def _load_newobj_ex(self):
        self._check_newobj(self.stack[-3])
        pickle._Unpickler.load_newobj_ex(self)

    def _load_inst_or_obj(self):
        self._refuse('calls a class (INST/OBJ)')

    # Dict keys and set members are hashed on insertion, and hashing a tuple of tuples visits every leaf: memo
    # references can make a few hundred bytes into 2^100 leaves. Keys are plain values or flat tuples of them.
    def _check_keys(self, keys):
        if not all(_is_plain_key(k) for k in keys):
            self._refuse('uses a nested value as a dict key or set member (hashing it could take unbounded time)')

    def _load_setitem(self):
        self._check_keys([self.stack[-2]])
        pickle._Unpickler.load_setitem(self)

    def _load_setitems(self):
        items = self.pop_mark()
        self._check_keys(items[0::2])
        target = self.stack[-1]
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_dict(self):
        items = self.pop_mark()
        self._check_keys(items[0::2])
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def _load_additems(self):
        items = self.pop_mark()
        self._check_keys(items)
        target = self.stack[-1]
        for item in items:
            target.add(item)

    def _load_frozenset(self):
        items = self.pop_mark()
        self._check_keys(items)
        self.append(frozenset(items))

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.INST[0]] = _load_inst_or_obj
    dispatch[pickle.OBJ[0]] = _load_inst_or_obj


def _describe_object(obj):
    if isinstance(obj, type):
        return f'the class {obj.__name__}'
    if callable(obj) and hasattr(obj, '__name__'):
        return f'the function {obj.__name__}'
    return f'a {type(obj).__name__}'


class _EDM2Unpickler(_RestrictedUnpickler):
    _GLOBALS = _GLOBALS
    # What EDM2 pickles BUILD: ModuleDicts, numpy arrays and dtypes, and the _metadata of state dicts.
    _BUILD_TYPES = (ModuleDictStub, PickledArray, _DTypeSpec, collections.OrderedDict)
    _NEWOBJ_TYPES = (EasyDict, ModuleDictStub)

    def persistent_load(self, pid):
        raise _Refusal('it holds a persistent id, which EDM2 network pickles never do')


def _mapped(f):
    """The open file as an mmap: pickle's reads of a length the file declares then return at most what the
    file holds, instead of first allocating the declared length (BINBYTES8 and FRAME carry 64-bit ones)."""
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


# ----------------------------------------------------------------------------
# Public API.


def load_edm2_pickle(path):
    """Unpickle an EDM2 network pickle or training snapshot without executing code.

    Returns the top-level object, normally an EasyDict with keys encoder, dataset_kwargs,
    loss_fn and ema, where persistent objects are PersistentObject records and tensors are
    CPU tensors in their stored dtype. Raises ExportError for anything else.
    """
    name = os.path.basename(path)
    try:
        f = open(path, 'rb')
    except FileNotFoundError:
        raise ExportError(f'input file not found: {path}') from None
    except IsADirectoryError:
        raise ExportError(f'input is a directory, not a pickle: {path}') from None
    except OSError as e:
        raise ExportError(f'cannot read {path}: {e.strerror}') from None
    with f:
        head = f.read(2)
        if not head:
            raise ExportError(f'{name} is empty; download it again')
        if len(head) < 2 or head[0] != 0x80 or head[1] < 2:
            raise ExportError(f'{name} is not a pickle file (EDM2 networks are .pkl files written by pickle.dump)')
        try:
            with _mapped(f) as mapped:
                data = _EDM2Unpickler(mapped).load()
        except _Refusal as e:
            raise ExportError(f'refusing to load {name}: {e}') from None
        except ExportError as e:
            raise ExportError(f'{name}: {e}') from None
        except (EOFError, pickle.UnpicklingError, ValueError, struct.error, TypeError, IndexError, KeyError,
                AttributeError, RecursionError, MemoryError, OverflowError) as e:
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ExportError(f'{name} is truncated or corrupt ({detail}); download it again') from None
    return data


def _architecture_fields():
    fields = {}
    for cls in (edm2.Precond, edm2.UNet, edm2.Block):
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in (
                    'self', 'device', 'in_channels', 'out_channels', 'emb_channels',
                    'flavor', 'resample_mode', 'attention'):
                fields.setdefault(p.name, p.default)
    return fields


# Every keyword an EDM2 Precond accepts (through UNet and Block), with its default.
ARCHITECTURE_FIELDS = _architecture_fields()
_PRECOND_POSITIONAL = ('img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_data', 'logvar_channels')
_PRECOND_ATTRS = ('img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_data')
_BLOCK_ATTRS = ('out_channels', 'flavor', 'resample_filter', 'resample_mode', 'num_heads',
                'dropout', 'res_balance', 'attn_balance', 'clip_act')


def _module_state(obj, where):
    if isinstance(obj, (PersistentObject, ModuleDictStub)):
        return obj.state
    raise ExportError(f"unsupported network: '{shown(where)}' is a {type(obj).__name__}, not an EDM2 module")


def _collect_tensors(obj, prefix, out, blocks, seen=None):
    # A module reached twice (memo references make a pickle's objects a graph, not a tree) would make this
    # walk loop forever on a cycle, or take exponential time on a DAG of shared children.
    seen = set() if seen is None else seen
    if id(obj) in seen:
        raise ExportError(f"corrupt pickle: module '{shown(prefix.rstrip('.') or 'ema')}' appears twice in the network")
    seen.add(id(obj))
    state = _module_state(obj, prefix.rstrip('.') or 'ema')
    if isinstance(obj, PersistentObject) and obj.class_name == 'Block':
        blocks[prefix.rstrip('.')] = {k: state[k] for k in _BLOCK_ATTRS if k in state}
    skip = state.get('_non_persistent_buffers_set') or set()
    for kind in ('_parameters', '_buffers'):
        for name, t in (state.get(kind) or {}).items():
            if t is None or (kind == '_buffers' and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise ExportError(f'corrupt pickle: {shown(prefix + str(name))} is not a tensor')
            out[prefix + name] = t
    for name, child in (state.get('_modules') or {}).items():
        if child is not None:
            _collect_tensors(child, f'{prefix}{name}.', out, blocks, seen)


def _encoder_constants(value):
    # A numpy array (EDM2's) or a short list of numbers; nothing else is walked (a memo graph could be huge).
    if isinstance(value, np.ndarray) and value.dtype.kind in 'iuf' and value.size <= 64:
        return [float(v) for v in value.astype(np.float64).ravel()]
    if isinstance(value, (list, tuple)) and len(value) <= 64 and all(
            type(v) in (int, float) for v in value):
        return [float(v) for v in value]
    return None


def _encoder_info(encoder):
    if encoder is None:
        return None
    if not isinstance(encoder, PersistentObject):
        raise ExportError(f"unsupported pickle: 'encoder' is a {type(encoder).__name__}")
    if encoder.class_name == 'StandardRGBEncoder':
        return {'type': 'rgb'}
    if encoder.class_name == 'StabilityVAEEncoder':
        s = encoder.state
        scale, bias = _encoder_constants(s.get('scale')), _encoder_constants(s.get('bias'))
        if scale is None or bias is None:
            raise ExportError('corrupt pickle: the VAE encoder has no usable scale/bias')
        if len(scale) != 4 or len(bias) != 4:
            raise ExportError(f'unsupported VAE encoder: expected 4 latent channels, got {len(scale)}')
        vae_name = s.get('vae_name')
        if not (isinstance(vae_name, str) and len(vae_name) < 1000):
            raise ExportError('corrupt pickle: the VAE encoder has no vae_name string')
        return {'type': 'vae', 'vae_name': vae_name, 'scale': scale, 'bias': bias}
    raise ExportError(f"unsupported encoder class '{shown(encoder.class_name)}' "
                      f'(known: StandardRGBEncoder, StabilityVAEEncoder)')


def extract_network(data):
    """Split an unpickled EDM2 snapshot into (state_dict, init_kwargs, attrs, encoder_info).

    state_dict: OrderedDict name -> tensor, the same keys as EDM2's `ema.state_dict()`.
    init_kwargs: the Precond constructor keywords recorded in the pickle (positional
        arguments folded in), checked against the known architecture fields.
    attrs: the Precond attributes (img_resolution, img_channels, label_dim, use_fp16,
        sigma_data), 'label_balance'/'concat_balance' of the UNet, and 'blocks': per Block
        (dotted name under ema) its recorded attributes.
    encoder_info: {'type': 'rgb'}, {'type': 'vae', 'vae_name', 'scale', 'bias'}, or None
        when the pickle holds no encoder.
    """
    if isinstance(data, PersistentObject):
        raise ExportError(f"not an EDM2 network pickle: the file holds a bare '{shown(data.class_name)}' object, "
                          f'not a snapshot dict with an ema network')
    if not isinstance(data, dict):
        raise ExportError(f'not an EDM2 network pickle: the file holds a {type(data).__name__}, '
                          f'not a snapshot dict with an ema network')
    if 'ema' not in data:
        keys = ', '.join(shown(repr(k), 40) for k in list(data)[:8]) or 'none'
        raise ExportError(f"the pickle has no 'ema' network (keys: {keys}); export an EDM2 network pickle "
                          f'(e.g. edm2-img512-xs-2147483-0.135.pkl) or a network-snapshot-*.pkl')
    ema = data['ema']
    if not isinstance(ema, PersistentObject) or ema.class_name != 'Precond':
        what = shown(ema.class_name) if isinstance(ema, PersistentObject) else type(ema).__name__
        raise ExportError(f"unsupported network: 'ema' is a {what}, expected an EDM2 Precond")

    state_dict = collections.OrderedDict()
    blocks = collections.OrderedDict()
    _collect_tensors(ema, '', state_dict, blocks)

    args = ema.state.get('_init_args') or ()
    kwargs = ema.state.get('_init_kwargs') or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict) or len(args) > len(_PRECOND_POSITIONAL):
        raise ExportError('corrupt pickle: malformed _init_args/_init_kwargs of the ema network')
    init_kwargs = dict(zip(_PRECOND_POSITIONAL, args))
    init_kwargs.update(kwargs)
    for key in init_kwargs:
        if key not in ARCHITECTURE_FIELDS:
            raise ExportError(f"unknown architecture field '{shown(key)}' in the pickle's _init_kwargs; this exporter "
                              f'rebuilds only the EDM2 architecture of NVlabs/edm2 (known fields: '
                              f"{', '.join(ARCHITECTURE_FIELDS)})")

    attrs = {k: ema.state[k] for k in _PRECOND_ATTRS if k in ema.state}
    unet = (ema.state.get('_modules') or {}).get('unet')
    if isinstance(unet, PersistentObject):
        for k in ('label_balance', 'concat_balance'):
            if k in unet.state:
                attrs[k] = unet.state[k]
    attrs['blocks'] = blocks
    return state_dict, init_kwargs, attrs, _encoder_info(data.get('encoder'))


# ----------------------------------------------------------------------------
# torch.save checkpoints (autoguide's own training output).


class _TorchZipUnpickler(_RestrictedUnpickler):
    """The data.pkl of a torch.save zip archive, restricted to tensors and plain data: the policy of
    torch.load(weights_only=True), applied by our own reader (torch < 2.0 cannot read floats that way, and
    torch.load would hand a TorchScript archive to torch.jit.load, running its code). Tensors are rebuilt by
    the same code as in EDM2 pickles, from members whose size is checked before they are read."""

    _GLOBALS = {('collections', 'OrderedDict'): collections.OrderedDict,
                ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
                ('torch._utils', '_rebuild_parameter'): _rebuild_parameter}
    _GLOBALS.update({('torch', name): dtype for name, dtype in _TORCH_DTYPES.items()})
    _GLOBALS.update({('torch', name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()})
    _BUILD_TYPES = (collections.OrderedDict,)  # only state dicts' `_metadata`, as torch's weights-only loader
    _WHAT = 'checkpoints of tensors and plain data'

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self._archive, self._prefix, self._storages = archive, prefix, {}

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != 'storage' or not isinstance(pid[1], _StorageType)
                or not isinstance(pid[2], str) or not _is_location(pid[3]) or not isinstance(pid[4], int)
                or pid[4] < 0):
            raise ExportError('corrupt checkpoint: malformed tensor storage record')
        _, kind, key, _, numel = pid
        if key not in self._storages:
            self._storages[key] = Storage(self._read_storage(key, kind.dtype, numel))
        flat = self._storages[key].flat
        if flat.dtype != kind.dtype or flat.numel() != numel:
            raise ExportError(f'corrupt checkpoint: tensor data {shown(key)} is referenced with two different types')
        return self._storages[key]

    def _read_storage(self, key, dtype, numel):
        itemsize = torch.empty(0, dtype=dtype).element_size()
        try:
            info = self._archive.getinfo(f'{self._prefix}data/{key}')
        except KeyError:
            raise ExportError(f'corrupt checkpoint: tensor data {shown(key)} is missing') from None
        # Checked before reading: the record may declare 10^12 elements for a member of a few bytes.
        if info.file_size != numel * itemsize:
            raise ExportError(f'corrupt checkpoint: tensor data {shown(key)} has the wrong size')
        data = bytearray(self._archive.read(info))
        return torch.frombuffer(data, dtype=dtype) if numel else torch.empty(0, dtype=dtype)


def _check_archive(archive, size):
    """Refuse zip archives that torch.save never writes: each way a reader and an attacker may disagree on what
    the archive holds, or a small file may unpack into a large one."""
    names = [info.filename for info in archive.infolist()]
    if any(n.endswith('/constants.pkl') or '/code/' in n for n in names):
        raise _Refusal('it is a TorchScript archive, whose code torch.load would run; checkpoints hold tensors '
                       'and plain data only')
    for info in archive.infolist():
        parts = info.filename.replace('\\', '/').split('/')
        if info.filename.startswith('/') or '..' in parts or ':' in parts[0]:
            raise _Refusal(f"it holds a member named '{shown(info.filename)}', outside the archive's folder")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise _Refusal(f"its member '{shown(info.filename)}' is compressed; torch.save stores members as they are")
        if info.header_offset + info.file_size > size:
            raise _Refusal(f"its member '{shown(info.filename)}' declares more data than the file holds")
    if len(set(names)) != len(names):
        raise _Refusal('it holds two members of the same name, which readers may resolve differently')


# torch.save's legacy (non-zip) format starts with this pickled magic number.
LEGACY_TORCH_SAVE = b'\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'


def _read_torch_zip(path):
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as f:
            legacy = f.read(len(LEGACY_TORCH_SAVE)) == LEGACY_TORCH_SAVE
        if legacy:
            raise _Refusal('it is in the legacy (pre-1.6) torch.save format, whose storages torch allocates at '
                           'any size the file declares; re-save it with torch.save defaults')
        raise zipfile.BadZipFile('not a complete zip archive, as torch.save writes')
    with zipfile.ZipFile(path) as archive:
        _check_archive(archive, os.path.getsize(path))
        pickles = [n for n in archive.namelist() if n.endswith('/data.pkl') and n.count('/') == 1]
        if len(pickles) != 1:
            raise ExportError('not a torch.save archive')
        if archive.namelist()[0].endswith('/byteorder') and archive.read(archive.namelist()[0]) != b'little':
            raise ExportError('written on a big-endian machine, which is not supported')
        prefix = pickles[0][:-len('data.pkl')]
        return _TorchZipUnpickler(io.BytesIO(archive.read(pickles[0])), archive, prefix).load()


def load_torch_checkpoint(path):
    """What torch.load(path, weights_only=True) returns, on the CPU; ExportError names any refusal.

    Read by our own restricted reader of the zip archive: torch.load is never called on the file.
    """
    name = os.path.basename(path)
    try:
        return _read_torch_zip(path)
    except _Refusal as e:
        raise ExportError(f'refusing to load {name}: {e}') from None
    except ExportError as e:
        raise ExportError(f'{name}: {e}') from None
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, struct.error, KeyError, IndexError,
            TypeError, AttributeError, OSError, zipfile.BadZipFile, RecursionError, MemoryError, OverflowError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f'{name} is truncated or corrupt ({detail})') from None
