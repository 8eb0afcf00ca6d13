"""Tensors as torch pickles spell them: storage types, storages, and our own `torch._utils._rebuild_*`.

The rebuild functions stand in for torch's and keep their names (refusals name them as the pickle does); each
checks the shape, stride and offset against the storage before making the view, so a file cannot make a
tensor reach past its data. Readers take them from the tables at the end, keyed by the pickled
(module, name).
"""

import torch

from .errors import ExportError

STORAGE_DTYPES = {
    'HalfStorage': torch.float16, 'FloatStorage': torch.float32, 'DoubleStorage': torch.float64,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool, 'UntypedStorage': torch.uint8,
}

_TORCH_DTYPES = {name: getattr(torch, name) for name in (
    'float16', 'float32', 'float64', 'bfloat16', 'half', 'float', 'double',
    'int8', 'int16', 'int32', 'int64', 'uint8', 'bool')}


class _StorageType:
    """A storage class a pickle names (torch.FloatStorage, ...): the dtype of its elements."""

    def __init__(self, dtype):
        self.dtype = dtype


def storage_type(module, name):
    """A new stand-in for the storage class torch.<name> (each its own object), or None if it is none."""
    return _StorageType(STORAGE_DTYPES[name]) if module == 'torch' and name in STORAGE_DTYPES else None


def is_storage_type(obj):
    return isinstance(obj, _StorageType)


class Storage:
    """A tensor storage as a flat 1-D tensor of its dtype."""

    def __init__(self, flat):
        self.flat = flat


def is_location(location):
    # Where torch.save found the storage: 'cpu', 'cuda', 'cuda:1', 'mps'; it is never evaluated, only checked.
    return isinstance(location, str) and (location in ('cpu', 'cuda', 'mps') or (
        location.startswith('cuda:') and location[5:].isdigit() and len(location) < 12))


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


# What the tensor globals of torch pickles resolve to: how tensors and parameters are rebuilt...
REBUILD_GLOBALS = {
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
}
# ...tensor subclasses and parameters with Python attributes, as newer torch pickles them (EDM2 pickles only)...
SUBCLASS_GLOBALS = {
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter_with_state,
    ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
    ('torch', 'Tensor'): _TensorType(),
    ('torch.nn.parameter', 'Parameter'): _TensorType(),
}
# ...and dtypes (torch.float16, ...).
DTYPE_GLOBALS = {('torch', name): dtype for name, dtype in _TORCH_DTYPES.items()}
