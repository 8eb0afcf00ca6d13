"""The legacy (pre-1.6, non-zip) torch.save format: the storages that EDM2 pickles embed, parsed by our own code.

EDM2 pickles hold each tensor storage as `torch.storage._load_from_bytes(<legacy torch.save blob>)`; here that
blob is read without torch.load (by our `_load_from_bytes`, which readers take from LEGACY_STORAGE_GLOBALS): its
pickles may name only the storage classes, and the declared size is checked against the bytes present before
anything is allocated.
"""

import io
import pickle
import struct

import torch

from .errors import ExportError, Refusal
from .restricted_unpickler import global_name
from .torch_tensors import Storage, is_location, is_storage_type, storage_type

# torch.save's legacy (non-zip) format starts with this pickled magic number.
LEGACY_TORCH_SAVE = b'\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'

_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


class _StorageRecord:
    def __init__(self, key, dtype, numel, view):
        self.key, self.dtype, self.numel, self.view = key, dtype, numel, view


class _LegacyStorageUnpickler(pickle.Unpickler):
    # The pickles inside a legacy torch.save blob name nothing but the storage classes.
    def find_class(self, module, name):
        kind = storage_type(module, name)
        if kind is not None:
            return kind
        raise Refusal(f"a tensor record references the Python global '{global_name(module, name)}', which "
                      f'EDM2 network pickles never contain (nothing in the file was executed)')

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != 'storage'
                or not is_storage_type(pid[1]) or not isinstance(pid[2], str)
                or not is_location(pid[3]) or not isinstance(pid[4], int) or pid[4] < 0):
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


# What the legacy storage global of an EDM2 pickle resolves to.
LEGACY_STORAGE_GLOBALS = {('torch.storage', '_load_from_bytes'): _load_from_bytes}
