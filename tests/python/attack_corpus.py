"""Hostile inputs for every converter (scripts/export_edm2.py, export_vae.py, phema.py, export_detectors.py).

Each Attack writes its input files into a folder and says how the converter is called on them. Payloads that
run code would create the file MARKER if anything executed them (os.system('touch MARKER'), or a TorchScript
__setstate__ that prints MARKER); size attacks declare far more data than the file holds. The files are built
here at test time, nothing binary is committed. tests/python/test_attack_corpus.py runs them through
tests/python/attack_runner.py and checks that each is refused with exit status 2 and leaves nothing behind.
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

import edm2_pickle_writer as writer
from edm2_pickle_writer import G, NewObj, Persistent, Reduce

P = pickle  # opcode constants


@dataclass
class Attack:
    name: str
    converter: str                # export_edm2, export_vae, phema, phema_set, export_detectors
    make: Callable[[str], bytes]  # marker -> the hostile file's bytes
    suffix: str                   # the hostile file's extension
    expect: str                   # what the one-line refusal must say
    tries: str                    # what the input attempts, for the record
    stock: Optional[str] = None   # how a stock loader runs its payload: 'pickle', 'torch.load' (weights_only
                                  # False) or 'torch.load-weights-only' (test_attack_corpus.py proves it does)

    def arguments(self, folder, marker):
        """Writes the hostile file (and what else the converter needs) into folder; outputs go to folder/out."""
        path = os.path.join(folder, self.name + self.suffix)
        with open(path, 'wb') as f:
            f.write(self.make(marker))
        out = os.path.join(folder, 'out')
        if self.converter == 'export_edm2':
            return [path, os.path.join(out, 'model.pt')]
        if self.converter == 'export_vae':
            return [path, os.path.join(out, 'vae.pt')]
        if self.converter == 'export_detectors':
            return ['--out-dir', out, '--which', 'inception', '--inception-file', path]
        if self.converter == 'phema_set':
            return [_phema_arguments(folder, path, out)[1], os.path.join(out, 'set.pt')]
        return _phema_arguments(folder, path, out)


def _phema_arguments(folder, path, out):
    # A good snapshot beside the hostile one, so that phema would otherwise have the two it needs.
    from conftest import TINY_UNCOND, make_net
    from autoguide_py import training
    indir = os.path.join(folder, 'snapshots')
    os.makedirs(indir, exist_ok=True)
    training.save_checkpoint(os.path.join(indir, 'run-0000064-0.050.pt'), make_net(TINY_UNCOND), nimg=64000,
                             ema_std=0.05)
    os.replace(path, os.path.join(indir, 'run-0000128-0.050' + os.path.splitext(path)[1]))
    return ['--indir', indir, '--outstd', '0.07', '--outdir', out]


def _touch(marker):
    return Reduce(G('os', 'system'), (f'touch {marker}',))


def _proto(body):
    return P.PROTO + b'\x04' + body + P.STOP


def _short(text):
    data = text.encode()
    return P.SHORT_BINUNICODE + bytes([len(data)]) + data


def _stack_global(module, name):
    return _short(module) + _short(name) + P.STACK_GLOBAL


# ----------------------------------------------------------------------------
# EDM2 pickles (the restricted unpickler of edm2_unpickler.py).


def _reduce_os_system(marker):
    return writer.dumps({'ema': _touch(marker)})


def _inst(marker):  # protocol 0's INST (module, name, then a call on the marked arguments), in a protocol 2 pickle
    return P.PROTO + b'\x02' + P.MARK + _short(f'touch {marker}') + P.INST + b'os\nsystem\n' + P.STOP


def _obj(marker):  # protocol 1's OBJ: the class is the first marked item
    return _proto(P.MARK + _stack_global('os', 'system') + _short(f'touch {marker}') + P.OBJ)


def _newobj_foreign(marker):
    return _proto(_stack_global('subprocess', 'Popen') + _short('touch') + _short(str(marker)) + P.TUPLE2 +
                  P.TUPLE1 + P.NEWOBJ)


def _newobj_whitelisted_function(marker):
    # _codecs.encode is whitelisted for REDUCE; NEWOBJ would call its __new__ with our arguments.
    return _proto(_stack_global('_codecs', 'encode') + P.EMPTY_TUPLE + P.NEWOBJ)


def _build_reader_class(marker):
    # BUILD with slot state on a whitelisted class: setattr(EasyDict, '__getattr__', set) would change the
    # reader's own class for every later file in the process (phema reads several).
    return _proto(_stack_global('dnnlib.util', 'EasyDict') + P.NONE + P.EMPTY_DICT + _short('__getattr__') +
                  _stack_global('builtins', 'set') + P.SETITEM + P.TUPLE2 + P.BUILD)


def _build_reader_function(marker):
    # setattr(_rebuild_tensor_v2, '__defaults__', ...) would poison every later tensor.
    return _proto(_stack_global('torch._utils', '_rebuild_tensor_v2') + P.NONE + P.EMPTY_DICT +
                  _short('__defaults__') + P.EMPTY_DICT + P.TUPLE1 + P.SETITEM + P.TUPLE2 + P.BUILD)


def _dotted_global(path):
    module, name = path
    return lambda marker: _proto(_stack_global(module, name) + _short(f'touch {marker}') + P.TUPLE1 + P.REDUCE)


def _persistent_id_code(marker):
    return _proto(_short(f"__import__('os').system('touch {marker}')") + P.BINPERSID)


def _storage_blob(numel, data, location='cpu'):
    """torch's legacy storage blob (what _load_from_bytes reads) declaring `numel` float32 elements over `data`."""
    out = io.BytesIO()
    for header in (0x1950a86a20f9469cfc6c, 1001, {'protocol_version': 1001, 'little_endian': True,
                                                  'type_sizes': {'short': 2, 'int': 4, 'long': 4}}):
        pickle.dump(header, out, protocol=2)
    record = ('storage', G('torch', 'FloatStorage'), 'k', location, numel, None)
    writer.Pickler(out, protocol=2).dump(Persistent(record))
    pickle.dump(['k'], out, protocol=2)
    out.write(struct.pack('<q', numel) + data)
    return writer.dumps({'t': Reduce(G('torch.storage', '_load_from_bytes'), (out.getvalue(),))})


def _blob_location_code(marker):
    # A tensor storage record whose location field is Python code (torch would look it up, never run it).
    return _storage_blob(2, bytes(8), f"__import__('os').system('touch {marker}')")


def _storage_10e12(marker):
    return _storage_blob(10 ** 12, bytes(16))


def _memo_self_reference(marker):
    # NEWOBJ memoizes the ModuleDict before its state is built, so the state can name it: _modules holds itself.
    module_dict = NewObj(G('torch.nn.modules.container', 'ModuleDict'))
    module_dict.state = {'_modules': {'self': module_dict}}
    ema = writer.persistent_ref('Precond', {'img_resolution': 8, '_modules': {'unet': module_dict}},
                                writer.NETWORK_SRC)
    return writer.dumps(NewObj(G('dnnlib.util', 'EasyDict'), items=[('ema', ema)]))


def _hash_bomb(marker):
    # t_k = (t_{k-1}, t_{k-1}) by memo reference: 100 levels are 2^100 leaves, and hashing t_100 (to use it as
    # a dict key) visits every one of them.
    body = P.EMPTY_TUPLE + P.MEMOIZE + P.POP
    for k in range(100):
        body += P.BINGET + bytes([k]) + P.BINGET + bytes([k]) + P.TUPLE2 + P.MEMOIZE + P.POP
    return _proto(P.EMPTY_DICT + body + P.BINGET + bytes([100]) + P.NONE + P.SETITEM)


def _dag_metadata(marker):
    # A graph of 2^100 leaves in 100 memo references, as the VAE encoder's vae_name of a good snapshot: writing
    # it into the metadata (str, json) would never end.
    from conftest import TINY_UNCOND, make_net
    name = []
    for _ in range(100):
        name = [name, name]
    state = {'vae_name': name, 'scale': [0.5] * 4, 'bias': [0.0] * 4, '_init_args': (), '_init_kwargs': {}}
    snapshot = writer.snapshot_ref(make_net(TINY_UNCOND), encoder=None)
    snapshot.items.insert(0, ('encoder', writer.persistent_ref('StabilityVAEEncoder', state, writer.ENCODER_SRC)))
    return writer.dumps(snapshot)


def _binbytes8_huge(marker):
    return _proto(P.BINBYTES8 + struct.pack('<Q', 1 << 60) + b'x' * 16)


def _frame_huge(marker):
    return P.PROTO + b'\x04' + P.FRAME + struct.pack('<Q', 1 << 62) + P.EMPTY_DICT + P.STOP


def _module_src(marker):
    return writer.malicious_pickles(marker)['persistent_module_src']


def _architecture_huge(marker):
    from conftest import TINY_UNCOND, make_net
    net = make_net(TINY_UNCOND)
    kwargs = dict(writer.edm2_init_kwargs(net), num_blocks=10 ** 9, model_channels=10 ** 9)
    return writer.dumps(writer.snapshot_ref(net, encoder='rgb', init_kwargs=kwargs))


# ----------------------------------------------------------------------------
# torch.save zip archives (checkpoints, VAE .bin/.ckpt, DINOv2 weights, phema snapshots).


class _Payload:
    marker = None

    def __reduce__(self):
        return (os.system, (f'touch {_Payload.marker}',))


def _checkpoint_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _small_checkpoint():
    return {'config': {'img_resolution': 8, 'img_channels': 3, 'label_dim': 0}, 'state_dict': {'w': torch.ones(2)}}


def _zip_reduce(marker):
    _Payload.marker = marker
    return _checkpoint_bytes(dict(_small_checkpoint(), callback=_Payload()))


def _rezip(data, extra=(), compress=None):
    """The archive's members again, plus (name, bytes) extras; compress: the member names to deflate."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, 'w') as dst:
        for info in src.infolist():
            kind = zipfile.ZIP_DEFLATED if compress and info.filename in compress else zipfile.ZIP_STORED
            dst.writestr(info.filename, src.read(info), compress_type=kind)
        for name, body in extra:
            dst.writestr(name, body)
    return out.getvalue()


def _zip_dotdot(marker):
    return _rezip(_checkpoint_bytes(_small_checkpoint()), extra=[('../x', b'#!/bin/sh\ntouch ' + marker.encode())])


def _zip_duplicate(marker):
    _Payload.marker = marker
    data = _checkpoint_bytes(_small_checkpoint())
    evil = _checkpoint_bytes({'x': _Payload()})
    with zipfile.ZipFile(io.BytesIO(evil)) as z:
        pkl = z.read([n for n in z.namelist() if n.endswith('data.pkl')][0])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        name = [n for n in z.namelist() if n.endswith('data.pkl')][0]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # zipfile warns of the duplicate name: that is the attack
        return _rezip(data, extra=[(name, pkl)])


def _zip_bomb(size):
    """A torch.save archive whose one storage member inflates to `size` zero bytes from about size/1000."""
    return lambda marker: _deflated_archive(_tensor_pickle(size // 4), size)


def _deflated_archive(pkl, size):
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk, parts, crc = bytes(1 << 20), [], 0
    for _ in range(size >> 20):
        parts.append(comp.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(comp.flush())
    deflated = b''.join(parts)
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w') as z:
        z.writestr('archive/data.pkl', pkl)
        z.writestr('archive/version', b'3\n')
    entries = [('archive/data/0', deflated, crc, size)]
    return _append_members(out.getvalue(), entries)


def _append_members(archive, entries):
    """`archive` with deflated members (name, deflated bytes, crc, size) added, central directory rebuilt."""
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        infos = z.infolist()
        cd_offset = struct.unpack('<I', archive[-6:-2])[0]
    body = bytearray(archive[:cd_offset])
    central = bytearray(archive[cd_offset:archive.rfind(b'PK\x05\x06')])
    for name, deflated, crc, size in entries:
        offset = len(body)
        raw = name.encode()
        common = struct.pack('<HHHHHIIIHH', 20, 0, 8, 0, 33, crc, len(deflated), size, len(raw), 0)
        body += b'PK\x03\x04' + common + raw + deflated
        central += b'PK\x01\x02' + struct.pack('<H', 20) + common + struct.pack('<HHHII', 0, 0, 0, 0, offset) + raw
    count = len(infos) + len(entries)
    end = b'PK\x05\x06' + struct.pack('<HHHHIIH', 0, 0, count, count, len(central), len(body), 0)
    return bytes(body + central + end)


def _tensor_pickle(numel, location='cpu'):
    """The data.pkl of a torch.save archive of one float32 tensor: its record declares numel and location."""
    return writer.dumps({'w': Reduce(G('torch._utils', '_rebuild_tensor_v2'),
                                     (Persistent(('storage', G('torch', 'FloatStorage'), '0', location, numel)),
                                      0, (numel,), (1,), False, collections.OrderedDict()))}, protocol=2)


def _storage_archive(numel, member_bytes, location='cpu'):
    """A torch.save archive of that tensor, its storage member `member_bytes` long."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w') as z:
        z.writestr('archive/data.pkl', _tensor_pickle(numel, location))
        z.writestr('archive/data/0', bytes(member_bytes))
        z.writestr('archive/version', b'3\n')
    return out.getvalue()


def _zip_storage_10e12(marker):
    return _storage_archive(10 ** 12, 16)


def _zip_location_code(marker):
    return _storage_archive(1, 4, f"__import__('os').system('touch {marker}')")


def _zip_build_list(marker):
    pkl = P.PROTO + b'\x02' + P.EMPTY_LIST + P.EMPTY_DICT + _short('append') + _short('x') + P.SETITEM + P.BUILD + \
        P.STOP
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w') as z:
        z.writestr('archive/data.pkl', pkl)
    return out.getvalue()


class _Printer(torch.nn.Module):
    """TorchScript whose __setstate__ runs on load: it prints the marker's path (TorchScript has no file I/O)."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.text, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool]):
        self.text = state[0]
        self.training = state[1]
        print(self.text)


def _torchscript(marker):
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(_Printer(f'RAN {marker}')), buf)
    return buf.getvalue()


def _legacy_reduce(marker):
    _Payload.marker = marker
    buf = io.BytesIO()
    torch.save(dict(_small_checkpoint(), callback=_Payload()), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _safetensors(header, data=b''):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack('<Q', len(text)) + text + data


def _st_header_4gb(marker):
    return struct.pack('<Q', 1 << 32) + b'{"a": 1}'


def _st_deep(marker):
    text = b'{"a": ' + b'[' * 100000 + b']' * 100000 + b'}'
    return struct.pack('<Q', len(text)) + text


def _st_duplicate(marker):
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    text = ('{"decoder.conv_in.bias": ' + entry + ', "decoder.conv_in.bias": ' + entry + '}').encode()
    return struct.pack('<Q', len(text)) + text + bytes(4)



def _edm2(name, make, expect, tries, stock=None, suffix='.pkl'):
    return Attack(name, 'export_edm2', make, suffix, expect, tries, stock)


def _vae(name, make, expect, tries, stock=None, suffix='.safetensors'):
    return Attack(name, 'export_vae', make, suffix, expect, tries, stock)


def _snapshot_attacks(converter, given):
    """The attacks on a folder of snapshots, for each converter that reads one (phema.py, export_phema_set.py)."""
    return [
        Attack(f'{converter}_snapshot_reduce', converter, _zip_reduce, '.pt', "'posix.system'",
               f'a .pt snapshot calling os.system, beside a good one{given}', 'torch.load'),
        Attack(f'{converter}_snapshot_bomb', converter, _zip_bomb(1 << 30), '.pt', 'is compressed',
               f'a .pt snapshot deflated from 1 GiB of zeros, beside a good one{given}'),
        Attack(f'{converter}_pickle_reduce', converter, _reduce_os_system, '.pkl', "'os.system'",
               f'a .pkl snapshot calling os.system, beside a good one{given}', 'pickle'),
    ]


ATTACKS = [
    _edm2('reduce_os_system', _reduce_os_system, "'os.system'",
          'REDUCE calling os.system (a global outside the whitelist)', 'pickle'),
    _edm2('inst_os_system', _inst, 'calls a class (INST/OBJ)', 'INST (protocol 0) calling os.system', 'pickle'),
    _edm2('obj_os_system', _obj, "'os.system'", 'OBJ (protocol 1) calling os.system', 'pickle'),
    _edm2('newobj_popen', _newobj_foreign, "'subprocess.Popen'", 'NEWOBJ creating a subprocess.Popen'),
    _edm2('newobj_whitelisted_function', _newobj_whitelisted_function, 'creates the function _codecs_encode',
          'NEWOBJ on a whitelisted function (_codecs.encode)'),
    _edm2('build_on_reader_class', _build_reader_class, 'sets the state of the class EasyDict',
          "BUILD with slot state on a whitelisted class, replacing the reader's EasyDict.__getattr__"),
    _edm2('build_on_reader_function', _build_reader_function, 'sets the state of the function _rebuild_tensor_v2',
          "BUILD on a whitelisted function, replacing the reader's _rebuild_tensor_v2.__defaults__"),
    _edm2('stack_global_dotted_globals', _dotted_global(('torch._utils', '_rebuild_tensor_v2.__globals__')),
          "'torch._utils._rebuild_tensor_v2.__globals__'",
          'STACK_GLOBAL with a dotted path from a whitelisted function to its module globals'),
    _edm2('stack_global_dotted_class', _dotted_global(('collections', 'OrderedDict.__init__.__class__')),
          "'collections.OrderedDict.__init__.__class__'",
          'STACK_GLOBAL with a dotted path through a whitelisted class'),
    _edm2('persistent_id_code', _persistent_id_code, 'persistent id', 'a persistent id carrying Python source'),
    _edm2('storage_location_code', _blob_location_code, 'malformed tensor storage record',
          'a tensor storage record whose location field is Python source'),
    _edm2('storage_10e12_elements', _storage_10e12, 'truncated tensor data',
          'a tensor storage declaring 10^12 float32 elements (4 TB) in 16 bytes'),
    _edm2('memo_self_reference', _memo_self_reference, "module 'unet.self' appears twice",
          'a memo self-reference: a ModuleDict whose _modules contains itself'),
    _edm2('memo_hash_bomb', _hash_bomb, 'nested value as a dict key',
          'a dict key of 2^100 leaves from 100 memo references (hashing it never ends)'),
    _edm2('memo_dag_metadata', _dag_metadata, 'no vae_name string',
          'an encoder vae_name of 2^100 leaves by memo references (writing it into the metadata never ends)'),
    _edm2('binbytes8_2e60', _binbytes8_huge, 'truncated or corrupt', 'BINBYTES8 declaring 2^60 bytes'),
    _edm2('frame_2e62', _frame_huge, "no 'ema' network", 'a FRAME declaring 2^62 bytes (around an empty dict)'),
    _edm2('embedded_module_source', _module_src, 'records no img_resolution',
          "module source that EDM2's own loader would exec (torch_utils.persistence)"),
    _edm2('architecture_10e9_blocks', _architecture_huge, 'implausible architecture field',
          'a well-formed snapshot whose _init_kwargs ask for 10^9 blocks of 10^9 channels'),

    _edm2('zip_reduce_os_system', _zip_reduce, "'posix.system'", 'a torch.save checkpoint calling os.system',
          'torch.load', '.pt'),
    _edm2('zip_member_dotdot', _zip_dotdot, "named '../x'", "a zip member named '../x'", suffix='.pt'),
    _edm2('zip_duplicate_members', _zip_duplicate, 'two members of the same name',
          'two data.pkl members: a clean one and one calling os.system', suffix='.pt'),
    _edm2('zip_compression_bomb', _zip_bomb(1 << 30), 'is compressed',
          'a storage member deflated from 1 GiB of zeros to 1 MiB', suffix='.pt'),
    _edm2('zip_storage_10e12_elements', _zip_storage_10e12, 'has the wrong size',
          'a storage record declaring 10^12 elements for a 16-byte member', suffix='.pt'),
    _edm2('zip_location_code', _zip_location_code, 'malformed tensor storage record',
          'a storage record whose location is Python source', suffix='.pt'),
    _edm2('zip_build_on_list', _zip_build_list, 'sets the state of a list',
          'BUILD on a list (only state dicts take BUILD)', suffix='.pt'),
    _edm2('torchscript_setstate', _torchscript, 'TorchScript archive',
          'a TorchScript archive whose __setstate__ runs on load (torch 1.13 torch.load(weights_only=True) hands it '
          'to torch.jit.load)', 'torch.load-weights-only', '.pt'),
    _edm2('legacy_torch_save_reduce', _legacy_reduce, 'legacy (pre-1.6) torch.save format',
          'the legacy torch.save format with a pickle calling os.system', 'torch.load', '.pt'),

    _vae('vae_bin_reduce', _zip_reduce, "'posix.system'", 'a diffusers .bin calling os.system', 'torch.load', '.bin'),
    _vae('safetensors_offsets_past_end',
         lambda marker: _safetensors({'decoder.conv_in.bias': {'dtype': 'F32', 'shape': [4],
                                                        'data_offsets': [0, 10 ** 12]}}, bytes(16)),
         'outside the 16 data bytes', 'tensor offsets reaching 10^12 bytes past a 16-byte data section'),
    _vae('safetensors_overlapping_tensors',
         lambda marker: _safetensors({'a': {'dtype': 'F32', 'shape': [4], 'data_offsets': [0, 16]},
                               'b': {'dtype': 'F32', 'shape': [4], 'data_offsets': [8, 24]}}, bytes(24)),
         'overlaps the tensor before it', 'two tensors sharing bytes'),
    _vae('safetensors_header_4gb', _st_header_4gb, '4294967296-byte header', 'a 4 GB header length'),
    _vae('safetensors_deep_json', _st_deep, 'nested too deeply', 'a header nested 100,000 levels deep'),
    _vae('safetensors_duplicate_names', _st_duplicate, 'a name appears twice', 'the same tensor name twice'),
    _vae('safetensors_10e12_elements',
         lambda marker: _safetensors({'a': {'dtype': 'F32', 'shape': [10 ** 6, 10 ** 6], 'data_offsets': [0, 16]}},
                              bytes(16)),
         'does not fill its 16 bytes', 'a shape of 10^12 elements over 16 bytes'),

    *_snapshot_attacks('phema', ''),
    *_snapshot_attacks('phema_set', ', given to export_phema_set.py'),
    Attack('phema_set_storage_10e12', 'phema_set', _storage_10e12, '.pkl', 'truncated tensor data',
           'a .pkl snapshot declaring 10^12 float32 elements in 16 bytes, given to export_phema_set.py'),

    Attack('inception_pickle_reduce', 'export_detectors', _reduce_os_system, '.pkl', "first 'os.system'",
           'an Inception "detector" pickle calling os.system (EDM2 ships one that runs code)', 'pickle'),
    Attack('inception_checkpoint_reduce', 'export_detectors', _zip_reduce, '.pt', 'not a TorchScript module',
           'a torch.save archive calling os.system given as the TorchScript detector', 'torch.load'),
]
