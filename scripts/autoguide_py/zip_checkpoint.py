"""torch.save checkpoints (autoguide's own training output), read without torch.load.

The zip archive's data.pkl is read by the restricted unpickler, allowed tensors and plain data only;
each storage member is checked against its record before it is read.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import torch

from .errors import ExportError, Refusal, shown
from .legacy_storage import LEGACY_TORCH_SAVE
from .restricted_unpickler import RestrictedUnpickler
from .torch_tensors import (DTYPE_GLOBALS, REBUILD_GLOBALS, STORAGE_DTYPES, Storage, is_location, is_storage_type,
                            storage_type)


class _TorchZipUnpickler(RestrictedUnpickler):
    """The data.pkl of a torch.save zip archive, restricted to tensors and plain data: the policy of
    torch.load(weights_only=True), applied by our own reader (torch < 2.0 cannot read floats that way, and
    torch.load would hand a TorchScript archive to torch.jit.load, running its code). Tensors are rebuilt by
    the same code as in EDM2 pickles, from members whose size is checked before they are read."""

    GLOBALS = {('collections', 'OrderedDict'): collections.OrderedDict, **REBUILD_GLOBALS, **DTYPE_GLOBALS}
    GLOBALS.update({('torch', name): storage_type('torch', name) for name in STORAGE_DTYPES})
    BUILD_TYPES = (collections.OrderedDict,)  # only state dicts' `_metadata`, as torch's weights-only loader
    WHAT = 'checkpoints of tensors and plain data'

    def __init__(self, file, archive, prefix):
        super().__init__(file)
        self._archive, self._prefix, self._storages = archive, prefix, {}

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != 'storage' or not is_storage_type(pid[1])
                or not isinstance(pid[2], str) or not is_location(pid[3]) or not isinstance(pid[4], int)
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
        raise Refusal('it is a TorchScript archive, whose code torch.load would run; checkpoints hold tensors '
                      'and plain data only')
    for info in archive.infolist():
        parts = info.filename.replace('\\', '/').split('/')
        if info.filename.startswith('/') or '..' in parts or ':' in parts[0]:
            raise Refusal(f"it holds a member named '{shown(info.filename)}', outside the archive's folder")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise Refusal(f"its member '{shown(info.filename)}' is compressed; torch.save stores members as they are")
        if info.header_offset + info.file_size > size:
            raise Refusal(f"its member '{shown(info.filename)}' declares more data than the file holds")
    if len(set(names)) != len(names):
        raise Refusal('it holds two members of the same name, which readers may resolve differently')


def _read_torch_zip(path):
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as f:
            legacy = f.read(len(LEGACY_TORCH_SAVE)) == LEGACY_TORCH_SAVE
        if legacy:
            raise Refusal('it is in the legacy (pre-1.6) torch.save format, whose storages torch allocates at '
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
    except Refusal as e:
        raise ExportError(f'refusing to load {name}: {e}') from None
    except ExportError as e:
        raise ExportError(f'{name}: {e}') from None
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, struct.error, KeyError, IndexError,
            TypeError, AttributeError, OSError, zipfile.BadZipFile, RecursionError, MemoryError, OverflowError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f'{name} is truncated or corrupt ({detail})') from None
