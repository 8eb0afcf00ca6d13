"""Exporting to TorchScript: outputs, metadata, our own checkpoints, and the CLI's errors."""

import hashlib
import os
import shutil
import subprocess

import pytest
import torch
import edm2_pickle_writer as writer
from conftest import TINY_COND, TINY_UNCOND, inputs, make_net, run_export_cli

from autoguide_py import edm2, export

SIGMAS = [0.002, 1.0, 80.0]


def reference_net(net, dtype=torch.float16):
    """Our Python network holding the weights in the dtype the pickle stores them in."""
    copy = edm2.Precond(**net.config).eval()
    copy.load_state_dict(net.state_dict())
    copy = copy.to(dtype)  # activations stay float32 on the CPU
    copy.prepare()
    return copy


def assert_same_outputs(model, net, config):
    x, labels = inputs(config)
    for sigma in SIGMAS:
        for lab in ([labels, None] if config['label_dim'] else [None]):
            want = net(x, torch.full([x.shape[0]], sigma), lab)
            got = model(x, torch.tensor(sigma), lab)
            assert got.dtype == torch.float32
            rel = ((got - want).abs().max() / want.abs().max()).item()
            assert rel <= 1e-5, (sigma, lab is None, rel)


def only_these_files(folder, names):
    assert sorted(os.listdir(folder)) == sorted(names)


@pytest.fixture(scope='module')
def cond_export(tmp_path_factory):
    """A conditional EDM2-format pickle exported through the real CLI."""
    folder = tmp_path_factory.mktemp('cond')
    net = make_net(TINY_COND, seed=3)
    src = writer.write_edm2_pickle(folder / 'edm2-img512-tiny-0134217-0.125.pkl', net, encoder='vae')
    out = folder / 'tiny.pt'
    result = run_export_cli(src, out)
    return net, src, out, result


def test_cli_exports_edm2_pickle(cond_export):
    net, src, out, result = cond_export
    assert result.returncode == 0, result.stderr
    assert result.stdout == ''
    summary = result.stderr.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith('exported edm2-img512-tiny-0134217-0.125.pkl')
    assert 'label_dim 10' in summary[0] and 'vae' in summary[0]
    only_these_files(out.parent, [src.name, out.name])

    model = torch.jit.load(str(out))
    with pytest.raises((RuntimeError, torch.jit.Error), match='prepare'):  # loaded modules raise jit.Error
        model.train()(*inputs(TINY_COND)[:1], torch.tensor(1.0))
    model.eval().prepare()
    assert_same_outputs(model, reference_net(net), TINY_COND)


def test_metadata(cond_export):
    net, src, out, _ = cond_export
    meta = export.read_metadata(str(out))
    assert meta == {
        'format_version': 1, 'img_resolution': 16, 'img_channels': 4, 'label_dim': 10, 'sigma_data': 0.5,
        'use_fp16': True, 'model_size': None, 'model_channels': 16, 'channel_mult': [1, 2], 'num_blocks': 1,
        'attn_resolutions': [8], 'param_count': sum(p.numel() for p in net.parameters()),
        'training_kimg': 134217, 'ema_std': 0.125,
        'encoder': {'type': 'vae', 'scale': [float(v) for v in writer.VAE_SCALE],
                    'bias': [float(v) for v in writer.VAE_BIAS], 'vae_name': 'stabilityai/sd-vae-ft-mse'},
        'source_file': src.name, 'source_sha256': hashlib.sha256(src.read_bytes()).hexdigest(),
        'exporter': 'autoguide 0.1.0'}


def test_file_holds_raw_fp16_weights_only(cond_export):
    net, _, out, _ = cond_export
    model = torch.jit.load(str(out))
    weights = dict(model.named_parameters())
    assert weights['unet.enc.16x16_conv.weight'].dtype == torch.float16
    assert list(model.state_dict()) == list(net.state_dict())
    raw = sum(t.numel() * 2 for t in net.state_dict().values())
    assert raw < out.stat().st_size < raw * 1.3 + 300_000  # code and metadata, no prepared copies


def test_unconditional_rgb_via_api(tmp_path):
    net = make_net(TINY_UNCOND, seed=4)
    src = writer.write_edm2_pickle(tmp_path / 'network-snapshot-0001024-0.050.pkl', net, encoder='rgb')
    loaded, info = export.load_network(str(src))
    meta = export.export_precond(loaded, tmp_path / 'u.pt', info)
    assert meta['encoder'] == {'type': 'rgb'} and meta['label_dim'] == 0
    assert (meta['training_kimg'], meta['ema_std']) == (1024, 0.05)
    model = torch.jit.load(str(tmp_path / 'u.pt'))
    model.prepare()
    assert_same_outputs(model, reference_net(net), TINY_UNCOND)


def test_export_precond_from_python_network(tmp_path):
    net = make_net(TINY_COND, seed=5)
    net.prepare()
    prepared = net.unet.out_conv.w_eff
    meta = export.export_precond(net, tmp_path / 'n.pt', {'training_kimg': 7, 'encoder': {'type': 'rgb'}},
                                 verify=True)
    assert meta['training_kimg'] == 7 and meta['source_file'] is None
    assert torch.equal(net.unet.out_conv.w_eff, prepared)  # the caller's network stays prepared
    model = torch.jit.load(str(tmp_path / 'n.pt'))
    model.prepare()
    assert_same_outputs(model, net, TINY_COND)
    with pytest.raises(ValueError, match='unknown metadata'):
        export.export_precond(net, tmp_path / 'm.pt', {'kimg': 1})


def test_a_file_fresh_from_torch_jit_load_can_be_called_directly(tmp_path):
    net = make_net(TINY_COND, seed=6).eval()
    export.export_precond(net, tmp_path / 'n.pt')
    direct = torch.jit.load(str(tmp_path / 'n.pt'))  # no prepare(): it prepares itself on first use
    x, labels = inputs(TINY_COND)
    with torch.no_grad():
        got = direct(x, torch.tensor(2.0), labels)
        net.prepare()
        assert torch.equal(got, net(x, torch.tensor(2.0), labels))
        assert direct.logvar_linear.w_eff.numel() > 0  # prepared once, kept
        # In training mode the weights must be prepared explicitly each step; the error says how.
        fresh = torch.jit.load(str(tmp_path / 'n.pt')).train()
        with pytest.raises((RuntimeError, torch.jit.Error), match=r'call prepare\(\) after loading'):
            fresh(x, torch.tensor(2.0), labels)


def test_own_checkpoint(tmp_path):
    net = make_net(TINY_UNCOND, seed=6)
    ckpt = tmp_path / 'demo.pt'
    torch.save({'config': net.config, 'state_dict': net.state_dict(), 'kimg': 300, 'ema_std': 0.1,
                'encoder': {'type': 'rgb'}}, ckpt)
    result = run_export_cli(ckpt, tmp_path / 'demo-ts.pt', '--ema-std', '0.2')
    assert result.returncode == 0, result.stderr
    meta = export.read_metadata(str(tmp_path / 'demo-ts.pt'))
    assert (meta['training_kimg'], meta['ema_std'], meta['use_fp16']) == (300, 0.2, True)
    model = torch.jit.load(str(tmp_path / 'demo-ts.pt'))
    model.prepare()
    net.prepare()
    assert_same_outputs(model, net, TINY_UNCOND)


def test_kimg_and_ema_std_options(cond_export, tmp_path):
    _, src, _, _ = cond_export
    assert export.main([str(src), str(tmp_path / 'o.pt'), '--kimg', '42', '--ema_std', '0.07', '-q']) == 0
    meta = export.read_metadata(str(tmp_path / 'o.pt'))
    assert (meta['training_kimg'], meta['ema_std']) == (42, 0.07)
    assert export.parse_file_name('x/edm2-img64-s-1073741-0.075.pkl') == (1073741, 0.075)
    assert export.parse_file_name('model.pkl') == (None, None)


def test_model_size_names():
    base = dict(img_resolution=64, img_channels=4, label_dim=1000, dropout=0.1, use_fp16=True)
    for name, channels in edm2.SIZES.items():
        assert export.model_size(dict(base, model_channels=channels)) == name
    assert export.model_size(dict(base, model_channels=100)) is None
    assert export.model_size(dict(base, model_channels=128, num_blocks=2)) is None
    assert export.model_size(dict(TINY_COND)) is None


# ----------------------------------------------------------------------------
# Bad inputs: exit status 2, one `error:` line, nothing left behind.


def bad_inputs(folder):
    net = make_net(TINY_UNCOND)
    cases = {}
    cases['missing'] = (folder / 'nope.pkl', 'not found')
    text = folder / 'text.pkl'
    text.write_text('not a pickle')
    cases['not_a_pickle'] = (text, 'not a pickle')
    cases['no_ema'] = (writer.write_edm2_pickle(folder / 'no_ema.pkl', net, include_ema=False), "no 'ema'")
    full = writer.write_edm2_pickle(folder / 'full.pkl', net).read_bytes()
    (folder / 'truncated.pkl').write_bytes(full[:len(full) * 2 // 3])
    cases['truncated'] = (folder / 'truncated.pkl', 'truncated')
    kwargs = dict(writer.edm2_init_kwargs(net), mystery_width=3)
    cases['unknown_field'] = (writer.write_edm2_pickle(folder / 'odd.pkl', net, init_kwargs=kwargs),
                              "unknown architecture field 'mystery_width'")
    wrong = dict(writer.edm2_init_kwargs(net), num_blocks=2)
    cases['wrong_shape'] = (writer.write_edm2_pickle(folder / 'wrong.pkl', net, init_kwargs=wrong),
                            'do not fit the architecture')
    marker = folder / 'PWNED'
    evil = writer.write_malicious_pickles(str(folder), str(marker))
    cases['malicious'] = (evil['subprocess_popen'], "'subprocess.Popen'")
    unsafe = folder / 'unsafe.pt'
    torch.save({'config': net.config, 'state_dict': net.state_dict(), 'hook': subprocess.CompletedProcess([], 0)},
               unsafe)
    cases['unsafe_checkpoint'] = (unsafe, 'refusing')
    return cases, marker


@pytest.fixture(scope='module')
def bad(tmp_path_factory):
    folder = tmp_path_factory.mktemp('bad')
    return bad_inputs(folder)


@pytest.mark.parametrize('case', ['missing', 'not_a_pickle', 'no_ema', 'truncated', 'unknown_field',
                                  'wrong_shape', 'malicious', 'unsafe_checkpoint'])
def test_bad_input_in_process(bad, case, out_dir, capsys):
    cases, marker = bad
    path, needle = cases[case]
    assert export.main([str(path), str(out_dir / 'out.pt')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and needle in err, err
    only_these_files(out_dir, [])
    assert not marker.exists()


def test_bad_inputs_through_the_script(bad, out_dir):
    cases, _ = bad
    for case in ('truncated', 'malicious'):
        result = run_export_cli(cases[case][0], out_dir / 'out.pt')
        assert result.returncode == 2 and result.stdout == ''
        assert result.stderr.startswith('error: ') and result.stderr.count('\n') == 1, result.stderr
        only_these_files(out_dir, [])


def test_unwritable_outputs(cond_export, tmp_path, capsys):
    _, src, _, _ = cond_export
    for out, needle in [(tmp_path / 'no' / 'such' / 'dir.pt', 'does not exist'),
                        (tmp_path, 'is a directory'),
                        (src, 'is the input')]:
        assert export.main([str(src), str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and needle in err, err
    assert sorted(os.listdir(tmp_path)) == []


def test_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        export.main(['only-one-argument'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1


# ----------------------------------------------------------------------------
# Running under a Python without torch.


def python_without_torch():
    for name in ('python3', 'python'):
        path = shutil.which(name)
        if path and subprocess.run([path, '-c', 'import torch'], capture_output=True).returncode != 0:
            return path
    return None


@pytest.mark.skipif(python_without_torch() is None, reason='no Python without torch on PATH')
def test_script_finds_a_python_with_torch(tmp_path):
    bare = python_without_torch()
    env = dict(os.environ)
    env.pop('AUTOGUIDE_PYTHON', None)
    result = run_export_cli('--help', env=env, python=bare)
    assert result.returncode == 0 and 'usage: export_edm2.py' in result.stdout, result.stderr

    env['AUTOGUIDE_PYTHON'] = bare
    result = run_export_cli('--help', env=env, python=bare)
    assert result.returncode == 2
    assert result.stderr == ('error: PyTorch not found; run scripts/setup.sh (installs python3-torch) '
                             'or set AUTOGUIDE_PYTHON\n')
