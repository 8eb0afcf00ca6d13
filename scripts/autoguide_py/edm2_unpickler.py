"""Read EDM2 network pickles without running anything they contain.

EDM2 pickles (NVlabs/edm2 training snapshots and post-hoc EMA reconstructions) embed the
Python source of their network classes and, read with plain `pickle.load`, `exec` it. Here a
restricted unpickler resolves only the handful of globals such a file legitimately names, each
to a function of ours that builds plain data: persistent objects become `PersistentObject`
records (class name + state), tensors are rebuilt from the raw storage bytes by our own parser
of torch's legacy serialization format. Any other global is refused before it is looked up.
What the network in such a file is: edm2_checkpoint.extract_network.
"""

import collections
import hashlib
import mmap
import os
import pickle
import struct

import numpy as np

from .errors import ExportError, Refusal
from .legacy_storage import LEGACY_STORAGE_GLOBALS
from .restricted_unpickler import SET_GLOBALS, RestrictedUnpickler
from .torch_tensors import DTYPE_GLOBALS, REBUILD_GLOBALS, SUBCLASS_GLOBALS

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


_GLOBALS = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'): _reconstruct_persistent_obj,
    ('dnnlib.util', 'EasyDict'): EasyDict,
    ('dnnlib', 'EasyDict'): EasyDict,
    ('torch.nn.modules.container', 'ModuleDict'): ModuleDictStub,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('_codecs', 'encode'): _codecs_encode,
    ('numpy', 'ndarray'): _NDArrayType(),
    ('numpy', 'dtype'): _np_dtype,
    ('numpy.core.multiarray', '_reconstruct'): _np_reconstruct,
    ('numpy._core.multiarray', '_reconstruct'): _np_reconstruct,
    ('numpy.core.multiarray', 'scalar'): _np_scalar,
    ('numpy._core.multiarray', 'scalar'): _np_scalar,
    **SET_GLOBALS, **REBUILD_GLOBALS, **SUBCLASS_GLOBALS, **LEGACY_STORAGE_GLOBALS, **DTYPE_GLOBALS,
}


class EDM2Unpickler(RestrictedUnpickler):
    GLOBALS = _GLOBALS
    # What EDM2 pickles BUILD: ModuleDicts, numpy arrays and dtypes, and the _metadata of state dicts.
    BUILD_TYPES = (ModuleDictStub, PickledArray, _DTypeSpec, collections.OrderedDict)
    NEWOBJ_TYPES = (EasyDict, ModuleDictStub)

    def persistent_load(self, pid):
        raise Refusal('it holds a persistent id, which EDM2 network pickles never do')


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
                data = EDM2Unpickler(mapped).load()
        except Refusal as e:
            raise ExportError(f'refusing to load {name}: {e}') from None
        except ExportError as e:
            raise ExportError(f'{name}: {e}') from None
        except (EOFError, pickle.UnpicklingError, ValueError, struct.error, TypeError, IndexError, KeyError,
                AttributeError, RecursionError, MemoryError, OverflowError) as e:
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ExportError(f'{name} is truncated or corrupt ({detail}); download it again') from None
    return data
