"""Reading EDM2 pickles: the real format is understood, anything executable is refused."""

import collections
import io
import pickle
import pickletools
import subprocess
import sys

import numpy as np
import pytest
import torch
import edm2_pickle_writer as writer
from conftest import TINY_COND, TINY_UNCOND, make_net

from autoguide_py.edm2_checkpoint import extract_network
from autoguide_py.edm2_unpickler import EDM2Unpickler, PersistentObject, load_edm2_pickle
from autoguide_py.errors import ExportError
from autoguide_py.export import load_network

# The globals of a pickle written by NVlabs/edm2's training loop (seen in one made by its own code).
EDM2_GLOBALS = {
    ('dnnlib.util', 'EasyDict'), ('torch_utils.persistence', '_reconstruct_persistent_obj'),
    ('numpy.core.multiarray', '_reconstruct'), ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('collections', 'OrderedDict'), ('torch._utils', '_rebuild_parameter'),
    ('torch._utils', '_rebuild_tensor_v2'), ('torch.storage', '_load_from_bytes'),
    ('torch.nn.modules.container', 'ModuleDict'),
}


def stack_globals(data):
    """(module, name) of every STACK_GLOBAL, resolving memoized strings; and the opcode counts."""
    memo, strings, found, ops = [], [], [], collections.Counter()
    for op, arg, _ in pickletools.genops(data):
        ops[op.name] += 1
        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE'):
            strings.append(arg)
        elif op.name == 'MEMOIZE':
            memo.append(strings[-1] if strings else None)
        elif op.name in ('BINGET', 'LONG_BINGET'):
            strings.append(memo[arg])
        elif op.name == 'STACK_GLOBAL':
            found.append((strings[-2], strings[-1]))
    return found, ops


@pytest.fixture(scope='module')
def cond_pickle(tmp_path_factory):
    net = make_net(TINY_COND)
    path = tmp_path_factory.mktemp('pkl') / 'edm2-img512-tiny-0134217-0.125.pkl'
    writer.write_edm2_pickle(path, net, encoder='vae')
    return net, path


def test_writer_reproduces_the_edm2_byte_format(cond_pickle):
    _, path = cond_pickle
    data = path.read_bytes()
    found, ops = stack_globals(data)
    assert set(found) == EDM2_GLOBALS
    assert len(found) == len(set(found))  # every global written once, then memo references
    # One embedded source per defining module, referenced from every persistent object.
    assert data.count(writer.NETWORK_SRC.encode()) == 1
    assert data.count(b'_reconstruct_persistent_obj') == 1
    assert ops['BINGET'] + ops['LONG_BINGET'] > 100
    assert data[:2] == b'\x80\x04' and ops['FRAME'] > 0 and ops['NEWOBJ'] >= 3 and ops['BUILD'] >= 3


def test_reads_snapshot_structure_and_weights(cond_pickle):
    net, path = cond_pickle
    data = load_edm2_pickle(str(path))
    assert list(data) == ['encoder', 'dataset_kwargs', 'loss_fn', 'ema']
    assert data.dataset_kwargs.use_labels is True
    assert isinstance(data.ema, PersistentObject) and data.ema.class_name == 'Precond'
    assert data.loss_fn.state['P_mean'] == -0.4

    state_dict, init_kwargs, attrs, encoder = extract_network(data)
    want = net.state_dict()
    assert list(state_dict) == list(want)
    for key, tensor in want.items():
        assert state_dict[key].dtype == torch.float16
        assert torch.equal(state_dict[key], tensor.half()), key
    assert init_kwargs['model_channels'] == 16 and init_kwargs['label_dim'] == 10
    assert init_kwargs['channel_mult'] == [1, 2] and init_kwargs['use_fp16'] is True
    assert {k: attrs[k] for k in ('img_resolution', 'img_channels', 'label_dim', 'sigma_data')} == \
        dict(img_resolution=16, img_channels=4, label_dim=10, sigma_data=0.5)
    assert attrs['blocks']['unet.enc.8x8_block0']['num_heads'] == 2
    assert encoder == {'type': 'vae', 'vae_name': 'stabilityai/sd-vae-ft-mse',
                       'scale': [float(v) for v in writer.VAE_SCALE], 'bias': [float(v) for v in writer.VAE_BIAS]}
    assert encoder['scale'][0] == pytest.approx(0.11990407) and encoder['bias'][3] == pytest.approx(0.32774392)


def test_unconditional_rgb_fp32_and_numpy2_spelling(tmp_path):
    net = make_net(TINY_UNCOND)
    path = writer.write_edm2_pickle(tmp_path / 'u.pkl', net, encoder='rgb', dtype=torch.float32)
    state_dict, _, attrs, encoder = extract_network(load_edm2_pickle(str(path)))
    assert encoder == {'type': 'rgb'} and attrs['label_dim'] == 0
    assert 'unet.emb_label.weight' not in state_dict
    assert all(torch.equal(state_dict[k], v) and state_dict[k].dtype == torch.float32
               for k, v in net.state_dict().items())

    path = writer.write_edm2_pickle(tmp_path / 'v.pkl', net, encoder='vae', numpy_module='numpy._core.multiarray')
    assert b'numpy._core.multiarray' in path.read_bytes()
    assert extract_network(load_edm2_pickle(str(path)))[3]['scale'] == [float(v) for v in writer.VAE_SCALE]


def test_tensors_pickled_by_torch_itself():
    # torch's own reductions (TypedStorage -> _load_from_bytes with a legacy torch.save blob).
    base = torch.randn(5, 6)
    cases = [base.half(), base.half()[1:4, 2:], base.t().contiguous().bfloat16(), base.half().t(),
             torch.nn.Parameter(base.clone(), requires_grad=False), torch.zeros(0, 3)]
    for tensor in cases:
        got = EDM2Unpickler(io.BytesIO(pickle.dumps(tensor, protocol=4))).load()
        assert got.dtype == tensor.dtype and got.shape == tensor.shape
        assert torch.equal(got, tensor.detach())


def test_numpy_arrays_of_objects_are_refused(tmp_path):
    evil = writer.Reduce(writer.G('numpy.core.multiarray', '_reconstruct'),
                         (writer.G('numpy', 'ndarray'), (0,), b'b'),
                         state=(1, (1,), writer.Reduce(writer.G('numpy', 'dtype'), ('O8', False, True)), False, [1]))
    path = tmp_path / 'obj.pkl'
    path.write_bytes(writer.dumps({'ema': evil}))
    with pytest.raises(ExportError, match='numpy dtype'):
        load_edm2_pickle(str(path))


# ----------------------------------------------------------------------------
# Refusals.


@pytest.fixture(scope='module')
def malicious(tmp_path_factory):
    folder = tmp_path_factory.mktemp('evil')
    marker = folder / 'PWNED'
    return writer.write_malicious_pickles(str(folder), str(marker)), marker


@pytest.mark.parametrize('name, needle', [
    ('os_system', 'os.system'), ('posix_system', 'posix.system'), ('builtins_eval', 'builtins.eval'),
    ('builtins_exec', 'builtins.exec'), ('subprocess_popen', 'subprocess.Popen'),
    ('subprocess_call', 'subprocess.call'), ('importlib_import_module', 'importlib.import_module'),
    ('nested_in_snapshot', 'os.system'), ('storage_blob_global', 'os.system'),
])
def test_malicious_globals_are_refused(malicious, name, needle):
    paths, marker = malicious
    with pytest.raises(ExportError) as info:
        load_edm2_pickle(paths[name])
    message = str(info.value)
    assert f"'{needle}'" in message and 'refusing' in message and '\n' not in message
    assert not marker.exists()


def test_embedded_module_source_is_never_run(malicious):
    paths, marker = malicious
    data = load_edm2_pickle(paths['persistent_module_src'])
    assert data['ema'].class_name == 'Precond' and len(data['ema'].module_src_sha256) == 64
    assert not marker.exists()
    with pytest.raises(ExportError):  # no weights to export, and still nothing run
        load_network(paths['persistent_module_src'])
    assert not marker.exists()


@pytest.mark.parametrize('name', ['os_system', 'builtins_eval', 'subprocess_call', 'importlib_import_module'])
def test_malicious_fixtures_do_run_under_plain_pickle(tmp_path, name):
    # Proves the refusal tests above test something: a stock unpickler runs the payload.
    marker = tmp_path / 'marker'
    path = tmp_path / f'{name}.pkl'
    path.write_bytes(writer.malicious_pickles(str(marker))[name])
    # The stock unpickler runs in a throwaway process on our own test payload, to prove it is harmful.
    stock_load = f'import pickle; pickle.load(open({str(path)!r}, "rb"))'  # safe: deliberate, see above
    subprocess.run([sys.executable, '-c', stock_load],
                   cwd=tmp_path, capture_output=True, timeout=60)
    assert marker.exists()


def test_not_a_pickle_empty_missing(tmp_path):
    text = tmp_path / 'notes.pkl'
    text.write_text('hello\n')
    with pytest.raises(ExportError, match='not a pickle'):
        load_edm2_pickle(str(text))
    empty = tmp_path / 'empty.pkl'
    empty.write_bytes(b'')
    with pytest.raises(ExportError, match='empty'):
        load_edm2_pickle(str(empty))
    with pytest.raises(ExportError, match='not found'):
        load_edm2_pickle(str(tmp_path / 'missing.pkl'))


def test_truncated_pickles_are_reported(cond_pickle, tmp_path):
    _, path = cond_pickle
    data = path.read_bytes()
    for cut in (3, 100, len(data) // 3, len(data) // 2, len(data) - 1):
        part = tmp_path / f'cut{cut}.pkl'
        part.write_bytes(data[:cut])
        with pytest.raises(ExportError, match='truncated'):
            load_edm2_pickle(str(part))


def test_snapshot_problems(tmp_path):
    net = make_net(TINY_UNCOND)
    no_ema = writer.write_edm2_pickle(tmp_path / 'no_ema.pkl', net, include_ema=False)
    with pytest.raises(ExportError, match="no 'ema'"):
        extract_network(load_edm2_pickle(str(no_ema)))

    bad_kwargs = writer.edm2_init_kwargs(net)
    bad_kwargs['fancy_new_layer'] = True
    odd = writer.write_edm2_pickle(tmp_path / 'odd.pkl', net, init_kwargs=bad_kwargs)
    with pytest.raises(ExportError, match="unknown architecture field 'fancy_new_layer'"):
        extract_network(load_edm2_pickle(str(odd)))

    bare = tmp_path / 'bare.pkl'
    bare.write_bytes(writer.dumps(writer.module_ref(net, torch.float16)))
    with pytest.raises(ExportError, match="bare 'Precond'"):
        extract_network(load_edm2_pickle(str(bare)))

    for value, what in ([1, 2, 3], 'list'), (np.zeros(3), 'ndarray'):
        other = tmp_path / 'other.pkl'
        other.write_bytes(pickle.dumps(value, protocol=4))
        with pytest.raises(ExportError):
            extract_network(load_edm2_pickle(str(other)))


def test_corrupt_tensor_blob_is_reported(tmp_path):
    blob = bytearray(writer.legacy_storage_bytes(torch.ones(4)))
    blob[-24:-16] = (99).to_bytes(8, 'little')  # element count no longer matches the record
    path = tmp_path / 'blob.pkl'
    path.write_bytes(writer.dumps({'t': writer.Reduce(writer.G('torch.storage', '_load_from_bytes'), (bytes(blob),))}))
    with pytest.raises(ExportError, match='storage size'):
        load_edm2_pickle(str(path))


def test_torch_checkpoints_load_as_torch_would(tmp_path):
    from autoguide_py.zip_checkpoint import load_torch_checkpoint
    t = torch.randn(3, 4)
    ckpt = {'config': {'sigma_data': 0.5, 'channel_mult': [1, 2], 'clip_act': None, 'name': 'demo'},
            'state_dict': collections.OrderedDict(w=t.half(), v=t[:, 1:], p=torch.nn.Parameter(t.clone())),
            'kimg': 12, 'ema_std': 0.05}
    path = tmp_path / 'ckpt.pt'
    torch.save(ckpt, path)
    got = load_torch_checkpoint(str(path))
    assert got['config'] == ckpt['config'] and (got['kimg'], got['ema_std']) == (12, 0.05)
    for key, want in ckpt['state_dict'].items():
        assert got['state_dict'][key].dtype == want.dtype and torch.equal(got['state_dict'][key], want.detach())

    evil = tmp_path / 'evil.pt'
    torch.save({'config': {}, 'x': subprocess.CompletedProcess([], 0)}, evil)
    with pytest.raises(ExportError, match='refusing to load evil.pt: .*CompletedProcess'):
        load_torch_checkpoint(str(evil))
    (tmp_path / 'cut.pt').write_bytes(path.read_bytes()[:200])
    with pytest.raises(ExportError, match='truncated or corrupt'):
        load_torch_checkpoint(str(tmp_path / 'cut.pt'))
