"""Property tests of the Python readers of outside input: the restricted unpickler (with the interpretation of
an EDM2 snapshot), the torch.save zip reader and the safetensors reader. Random files, random opcode streams and
mutations of valid files are either read or refused with ExportError, the one exception these readers document;
any other exception type is a bug. Each call runs with its address space capped 2 GiB above the process's and a
60 s alarm, so unbounded work fails the test instead of the machine.

AUTOGUIDE_PROPERTY_EXAMPLES sets the examples per property (scripts/dev/fuzz.sh raises it).
"""
import collections
import contextlib
import io
import json
import os
import pickle
import resource
import signal
import struct
import tempfile
import zipfile

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoguide_py.edm2_checkpoint import extract_network
from autoguide_py.edm2_unpickler import load_edm2_pickle
from autoguide_py.errors import ExportError
from autoguide_py.safetensors import load_safetensors
from autoguide_py.zip_checkpoint import load_torch_checkpoint
import edm2_pickle_writer as writer
from conftest import TINY_UNCOND, make_net

EXAMPLES = int(os.environ.get('AUTOGUIDE_PROPERTY_EXAMPLES', '60'))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORK = tempfile.mkdtemp(prefix='autoguide-properties-')


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang('a reader ran for 60 s')


@contextlib.contextmanager
def bounded():
    with open('/proc/self/status') as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmSize:'))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), hard))
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_or_refuse(read, data, suffix):
    """read(path) on a file holding data: its result, or None when it refused with ExportError."""
    path = os.path.join(WORK, 'input' + suffix)
    with open(path, 'wb') as f:
        f.write(data)
    with bounded():
        try:
            return read(path)
        except ExportError as e:
            assert '\n' not in str(e), str(e)  # the converters print it as one line
            return None


def read_snapshot(path):
    return extract_network(load_edm2_pickle(path))


# ----------------------------------------------------------------------------
# Valid files to mutate, and the mutations.


def _valid_pickle():
    return writer.dumps(writer.snapshot_ref(make_net(dict(TINY_UNCOND, model_channels=8)), encoder='vae'))


def _valid_checkpoint():
    buf = io.BytesIO()
    state_dict = collections.OrderedDict(w=torch.ones(3), b=torch.zeros(2))
    torch.save({'config': {'img_resolution': 8}, 'state_dict': state_dict, 'kimg': 12, 'ema_std': 0.05, 'name': 'x',
                'shape': (1, 2)}, buf)
    return buf.getvalue()


def _safetensors(header, data):
    text = json.dumps(header).encode()
    return struct.pack('<Q', len(text)) + text + data


def _valid_safetensors():
    header = {'__metadata__': {'format': 'pt'}, 'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]},
              'b': {'dtype': 'F16', 'shape': [2, 1], 'data_offsets': [8, 12]}}
    return _safetensors(header, bytes(range(12)))


VALID = {'pickle': _valid_pickle(), 'checkpoint': _valid_checkpoint(), 'safetensors': _valid_safetensors()}

mutations = st.lists(st.tuples(st.sampled_from(['flip', 'set', 'insert', 'delete', 'truncate', 'repeat']),
                               st.integers(0, 1 << 30), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6)


def mutate(data, edits):
    data = bytearray(data)
    for kind, where, value in edits:
        at = where % (len(data) + 1)
        if kind == 'flip' and at < len(data):
            data[at] ^= value[0]
        elif kind == 'set':
            data[at:at + len(value)] = value
        elif kind == 'insert':
            data[at:at] = value
        elif kind == 'delete':
            del data[at:at + value[0]]
        elif kind == 'truncate':
            del data[at:]
        elif kind == 'repeat':
            data[at:at] = data[at:at + value[0]] * 2
    return bytes(data)


# ----------------------------------------------------------------------------
# Random pickles: an opcode stream of whitelisted and forbidden globals, containers, memo and calls.


def _short(text):
    return pickle.SHORT_BINUNICODE + bytes([len(text)]) + text.encode()


_GLOBALS = [('dnnlib.util', 'EasyDict'), ('collections', 'OrderedDict'), ('torch._utils', '_rebuild_tensor_v2'),
            ('torch._utils', '_rebuild_parameter'), ('builtins', 'set'), ('builtins', 'frozenset'),
            ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'), ('numpy', 'ndarray'),
            ('torch.nn.modules.container', 'ModuleDict'), ('torch_utils.persistence', '_reconstruct_persistent_obj'),
            ('torch.storage', '_load_from_bytes'), ('_codecs', 'encode'), ('torch', 'FloatStorage'),
            ('torch', 'float32'), ('os', 'system'), ('builtins', 'getattr'), ('collections', 'OrderedDict.__new__')]
_OPCODES = [pickle.MARK, pickle.EMPTY_DICT, pickle.EMPTY_LIST, pickle.EMPTY_TUPLE, pickle.EMPTY_SET, pickle.NONE,
            pickle.NEWTRUE, pickle.MEMOIZE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3, pickle.TUPLE, pickle.LIST,
            pickle.DICT, pickle.APPEND, pickle.APPENDS, pickle.SETITEM, pickle.SETITEMS, pickle.ADDITEMS,
            pickle.FROZENSET, pickle.BUILD, pickle.REDUCE, pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.POP, pickle.DUP,
            pickle.BINPERSID, pickle.STACK_GLOBAL, pickle.BINFLOAT + struct.pack('>d', 0.5),
            pickle.BININT1 + b'\x06', pickle.BININT + struct.pack('<i', -1),
            pickle.BINBYTES + struct.pack('<I', 4) + b'abcd',
            _short('a'), _short('state'), _short('class_name'), _short('Precond'), _short('type'), _short('class'),
            _short('version'), _short('_modules'), _short('ema'), _short('<f4')]
opcode = st.one_of(st.sampled_from(_OPCODES), st.integers(0, 5).map(lambda i: pickle.BINGET + bytes([i])),
                   st.sampled_from(_GLOBALS).map(lambda g: _short(g[0]) + _short(g[1]) + pickle.STACK_GLOBAL))
opcode_streams = st.lists(opcode, max_size=60).map(lambda ops: pickle.PROTO + b'\x04' + b''.join(ops) + pickle.STOP)


def _as_checkpoint(data_pkl):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('archive/data.pkl', data_pkl)
        z.writestr('archive/data/0', bytes(16))
    return buf.getvalue()


# ----------------------------------------------------------------------------
# The properties.


@SETTINGS
@given(st.binary(max_size=2048), st.sampled_from([b'', b'\x80\x04', b'\x80\x02', b'PK\x03\x04']))
def test_random_bytes_are_read_or_refused(data, prefix):
    for read, suffix in ((read_snapshot, '.pkl'), (load_torch_checkpoint, '.pt'), (load_safetensors, '.safetensors')):
        read_or_refuse(read, prefix + data, suffix)


@SETTINGS
@given(opcode_streams)
def test_random_pickles_are_read_or_refused(data):
    read_or_refuse(read_snapshot, data, '.pkl')
    read_or_refuse(load_torch_checkpoint, _as_checkpoint(data), '.pt')


@SETTINGS
@given(mutations)
def test_mutated_edm2_pickles_are_read_or_refused(edits):
    read_or_refuse(read_snapshot, mutate(VALID['pickle'], edits), '.pkl')


@SETTINGS
@given(mutations)
def test_mutated_checkpoints_are_read_or_refused(edits):
    read_or_refuse(load_torch_checkpoint, mutate(VALID['checkpoint'], edits), '.pt')


@SETTINGS
@given(mutations)
def test_mutated_safetensors_are_read_or_refused(edits):
    read_or_refuse(load_safetensors, mutate(VALID['safetensors'], edits), '.safetensors')


entries = st.fixed_dictionaries({
    'dtype': st.sampled_from(['F32', 'F16', 'BF16', 'I64', 'f32']),
    'shape': st.lists(st.integers(-1, 5), max_size=3),
    'data_offsets': st.lists(st.integers(-2, 40), min_size=2, max_size=2)})


@SETTINGS
@given(st.dictionaries(st.text(max_size=3), entries, max_size=4), st.integers(0, 40))
def test_safetensors_headers_are_read_only_when_they_tile_the_data(header, size):
    tensors = read_or_refuse(load_safetensors, _safetensors(header, bytes(size)), '.safetensors')
    if tensors is None:
        return
    # Read means: every tensor has its declared shape, and together they account for every data byte once.
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == size
    for name, t in tensors.items():
        assert list(t.shape) == header[name]['shape']


def test_the_valid_files_read():
    # The mutations start from files the readers accept, or they would prove little.
    assert read_or_refuse(read_snapshot, VALID['pickle'], '.pkl') is not None
    assert read_or_refuse(load_torch_checkpoint, VALID['checkpoint'], '.pt')['kimg'] == 12
    assert list(read_or_refuse(load_safetensors, VALID['safetensors'], '.safetensors')) == ['a', 'b']
