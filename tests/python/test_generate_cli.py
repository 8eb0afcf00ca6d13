"""`autoguide generate` end to end: the C++ sampler against tests/python/edm_sampler_ref.py on the same nets,
batch invariance, outputs and metadata, and every bad input of the generate issue."""
import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from cli import BIN, autoguide, ok, requires_bin  # noqa: F401

import edm_sampler_ref as ref
import model_fixtures

pytestmark = requires_bin


load = model_fixtures.load_exported


def png_text(path):
    data = Path(path).read_bytes()
    pos, chunks = 8, {}
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b'tEXt':
            key, _, value = body.partition(b'\0')
            chunks[key.decode()] = value.decode('latin-1')
        pos += 12 + length
    return chunks


CASES = {
    'no-guidance': dict(gnet=None, w=1.0, churn={}),
    'autoguidance': dict(gnet='guide', w=2.1, churn={}),
    'cfg': dict(gnet='uncond', w=1.4, churn={}),
    'autoguidance-churn': dict(gnet='guide', w=2.1, churn=dict(S_churn=30.0, S_min=0.05, S_max=20.0, S_noise=1.003)),
}


@pytest.mark.parametrize('case', CASES)
def test_sampler_matches_independent_python(case, nets, tmp_path):
    c = CASES[case]
    seeds = [5, 0, 17, 3, 8]
    args = ['generate', '--net', nets['main'], '--seeds', '5,0,17,3,8', '--steps', 12, '--batch', 2,
            '--npy', tmp_path / 'x.npy', '--device', 'cpu', '--guidance', c['w'], '--quiet']
    if c['gnet']:
        args += ['--gnet', nets[c['gnet']]]
    for k, v in c['churn'].items():
        args += [f'--{k}', v]
    r = autoguide(*args)
    assert r.returncode == 0, r.stderr
    ours = np.load(tmp_path / 'x.npy')
    net = load(nets['main'])
    gnet = load(nets[c['gnet']]) if c['gnet'] else None
    expected = []
    with torch.no_grad():
        for s in seeds:  # one seed at a time: the reference's per-seed streams make batches irrelevant
            gens, noise, labels, _ = ref.draw([s], 3, model_fixtures.RES, model_fixtures.LABELS)
            expected.append(ref.sample(net, noise, labels, gens, gnet=gnet, w=c['w'], num_steps=12, **c['churn']))
    expected = torch.cat(expected).numpy()
    assert ours.shape == (5, 3, 8, 8) and ours.dtype == np.float32
    assert np.abs(ours - expected).max() < 1e-4
    assert np.abs(expected).max() > 0.1  # a real signal, not a collapsed output


def test_fast_path_samples_what_the_independent_sampler_does(nets, tmp_path):
    # --fast runs the U-Net natively: not bit-identical, but the whole 12-step autoguided trajectory stays
    # within 1e-4 of the Python reference, and the images and the sweep record which path made them.
    r = autoguide('generate', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2.1, '--seeds', '5,0,3',
                  '--steps', 12, '--batch', 2, '--npy', tmp_path / 'x.npy', '--outdir', tmp_path / 'img',
                  '--device', 'cpu', '--fast', '--quiet')
    assert r.returncode == 0, r.stderr
    ours = np.load(tmp_path / 'x.npy')
    net, gnet = load(nets['main']), load(nets['guide'])
    expected = []
    with torch.no_grad():
        for s in (5, 0, 3):
            gens, noise, labels, _ = ref.draw([s], 3, model_fixtures.RES, model_fixtures.LABELS)
            expected.append(ref.sample(net, noise, labels, gens, gnet=gnet, w=2.1, num_steps=12))
    expected = torch.cat(expected).numpy()
    assert np.abs(ours - expected).max() < 1e-4
    assert json.loads(png_text(tmp_path / 'img' / '000005.png')['parameters'])['fast'] is True
    ok('generate', '--net', nets['main'], '--seeds', '5', '--steps', 2, '--outdir', tmp_path / 'exact', '--quiet')
    assert json.loads(png_text(tmp_path / 'exact' / '000005.png')['parameters'])['fast'] is False
    for flag, expected_fast in (['--fast'], True), ([], False):
        out = tmp_path / f'sweep{len(flag)}'
        ok('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2, '--seeds', '5', '--steps', 2,
           '--outdir', out, '--quiet', *flag)
        assert json.loads((out / 'results.json').read_text())['fast'] is expected_fast
    # A net that is not an EDM2 U-Net: one line naming the fix, exit 2, nothing written.
    faulty = model_fixtures.export_faulty_net(str(tmp_path), model_fixtures.FAULTY_BELOW)
    r = autoguide('generate', '--net', faulty, '--seeds', 0, '--steps', 2, '--outdir', tmp_path / 'bad', '--fast')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'turn --fast off' in r.stderr
    assert not (tmp_path / 'bad').exists()


def test_cfg_differs_from_autoguidance_and_unguided(nets, tmp_path):
    outs = {}
    for name, extra in (('none', []), ('ag', ['--gnet', nets['guide'], '--guidance', 2]),
                        ('cfg', ['--gnet', nets['uncond'], '--guidance', 2])):
        r = autoguide('generate', '--net', nets['main'], '--seeds', '0-3', '--steps', 8, '--quiet',
                      '--npy', tmp_path / f'{name}.npy', *extra)
        assert r.returncode == 0, r.stderr
        outs[name] = np.load(tmp_path / f'{name}.npy')
    assert np.abs(outs['ag'] - outs['none']).max() > 1e-3
    assert np.abs(outs['cfg'] - outs['ag']).max() > 1e-3


def test_pngs_identical_for_any_batch_size(nets, tmp_path):
    contents = []
    for b in (1, 3, 8):
        out = tmp_path / f'b{b}'
        r = autoguide('generate', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2.1,
                      '--seeds', '0-7', '--steps', 10, '--batch', b, '--outdir', out, '--quiet')
        assert r.returncode == 0, r.stderr
        contents.append([(out / f'{s:06d}.png').read_bytes() for s in range(8)])
    assert contents[0] == contents[1] == contents[2]


def test_outputs_metadata_and_manifest(nets, tmp_path):
    out = tmp_path / 'run'
    r = autoguide('generate', '--net', nets['main'], '--gnet', nets['uncond'], '--guidance', 1.5, '--seeds',
                  '998-1001', '--steps', 6, '--subdirs', '--outdir', out, '--grid', tmp_path / 'grid.png',
                  '--grid-cols', 2, '--npy', tmp_path / 'x.npy', '--class', 4)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith('autoguide: 4 images (cfg, w=1.5)')
    files = sorted(str(p.relative_to(out)) for p in out.rglob('*.png'))
    assert files == ['000000/000998.png', '000000/000999.png', '001000/001000.png', '001000/001001.png']
    meta = json.loads(png_text(out / '001000' / '001001.png')['parameters'])
    sha = __import__('hashlib').sha256(Path(nets['main']).read_bytes()).hexdigest()
    assert meta['seed'] == 1001 and meta['class'] == 4 and meta['guidance'] == 1.5 and meta['mode'] == 'cfg'
    assert meta['steps'] == 6 and meta['rho'] == 7 and meta['sigma_max'] == 80 and meta['S_churn'] == 0
    assert meta['net'] == 'main.pt' and meta['net_sha256'] == sha[:12] and meta['gnet'] == 'uncond.pt'
    assert meta['tool'].startswith('autoguide ')
    assert meta['commit'] and f"commit {meta['commit']}\n" in autoguide('--version').stdout
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['commit'] == meta['commit']
    assert [im['seed'] for im in manifest['images']] == [998, 999, 1000, 1001]
    assert all(im['class'] == 4 for im in manifest['images'])
    assert manifest['net_sha256_full'] == sha and manifest['mode'] == 'cfg'
    x = np.load(tmp_path / 'x.npy')
    assert x.shape == (4, 3, 8, 8)
    # The PNG pixels are EDM2's RGB decoding of exactly these samples.
    import PIL.Image
    pixels = np.asarray(PIL.Image.open(out / '000000' / '000999.png')).transpose(2, 0, 1)
    assert np.array_equal(pixels, np.clip(x[1] * 127.5 + 128, 0, 255).astype(np.uint8))
    grid = np.asarray(PIL.Image.open(tmp_path / 'grid.png'))
    assert grid.shape == (16, 16, 3)
    assert np.array_equal(grid[8:, :8].transpose(2, 0, 1), np.clip(x[2] * 127.5 + 128, 0, 255).astype(np.uint8))


def test_npy_only_writes_nothing_else(nets, tmp_path):
    r = autoguide('generate', '--net', nets['main'], '--seeds', '3,1,2', '--steps', 4, '--npy', tmp_path / 'x.npy',
                  '--quiet')
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['x.npy']
    solo = tmp_path / 'one.npy'
    assert autoguide('generate', '--net', nets['main'], '--seeds', '1', '--steps', 4, '--npy', solo,
                     '--quiet').returncode == 0
    # Seed order is kept; batch composition changes GEMM blocking, so only the last float bits may differ.
    assert np.abs(np.load(tmp_path / 'x.npy')[1] - np.load(solo)[0]).max() < 1e-4


def test_resume_keeps_finished_images(nets, tmp_path):
    out = tmp_path / 'run'
    base = ['generate', '--net', nets['main'], '--seeds', '0-3', '--steps', 4, '--batch', 1, '--outdir', out,
            '--quiet']
    assert autoguide(*base).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.glob('*.png')}
    again = autoguide(*base)
    assert again.returncode == 2 and '--resume' in again.stderr
    (out / '000002.png').unlink()
    assert autoguide(*base, '--resume').returncode == 0
    after = {p.name: p.stat().st_mtime_ns for p in out.glob('*.png')}
    assert set(after) == set(before)
    assert all(after[n] == before[n] for n in before if n != '000002.png')
    assert len(json.loads((out / 'manifest.json').read_text())['images']) == 4


def test_info_reports_metadata(nets):
    r = autoguide('info', nets['main'], '--json')
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    net = load(nets['main'])
    assert info['label_dim'] == 10 and info['img_resolution'] == 8
    assert info['loaded_param_count'] == sum(p.numel() for p in net.parameters()) == info['param_count']
    assert 'parameters:' in autoguide('info', nets['main']).stdout


BAD = {  # options that replace the defaults of a valid run; the message must name the problem
    'reversed seeds': ({'--seeds': '5-3'}, 'seed list'),
    'empty seeds': ({'--seeds': ''}, 'seed list'),
    'letter seeds': ({'--seeds': 'a'}, 'seed list'),
    'negative seed': ({'--seeds': '-1'}, 'seed list'),
    'nan guidance': ({'--guidance': 'nan', '--gnet': '{guide}'}, '--guidance'),
    'negative guidance': ({'--guidance': '-2', '--gnet': '{guide}'}, '--guidance'),
    'class too large': ({'--class': '10'}, 'out of range'),
    'class on uncond': ({'--class': '1', '--net': '{uncond}'}, 'unconditional'),
    'guidance without gnet': ({'--guidance': '2'}, '--gnet'),
    'mismatched nets': ({'--guidance': '2', '--gnet': '{other}'}, 'does not match'),
    'uncond main, cond guide': ({'--net': '{uncond}', '--gnet': '{guide}', '--guidance': '2'}, 'label_dim'),
    'corrupt model': ({'--net': '{corrupt}'}, 'TorchScript'),
    'missing model': ({'--net': '{missing}'}, 'not found'),
    'unwritable outdir': ({'--outdir': '/proc/autoguide-out'}, 'output folder'),
    'one step': ({'--steps': '1'}, '--steps'),
    'unknown device': ({'--device': 'tpu'}, 'device'),
    'unknown option': ({'--frobnicate': '1'}, 'frobnicate'),
}


@pytest.fixture(scope='module')
def bad_files(nets, tmp_path_factory):
    d = tmp_path_factory.mktemp('bad')
    from autoguide_py.export import export_precond
    other = d / 'other.pt'  # one channel where the main net has three
    export_precond(model_fixtures.random_net(10, 16, 4, img_channels=1), str(other))
    corrupt = d / 'corrupt.pt'
    corrupt.write_bytes(Path(nets['main']).read_bytes()[:5000])
    return dict(guide=nets['guide'], uncond=nets['uncond'], other=other, corrupt=corrupt, missing=d / 'nope.pt')


@pytest.mark.parametrize('case', BAD)
def test_bad_input_is_one_line_exit_2_nothing_written(case, nets, bad_files, tmp_path):
    change, needle = BAD[case]
    out = tmp_path / 'out'
    opts = {'--net': nets['main'], '--seeds': '0-1', '--steps': '4', '--outdir': out, '--npy': tmp_path / 'x.npy'}
    opts.update({k: v.format(**{n: str(p) for n, p in bad_files.items()}) for k, v in change.items()})
    r = autoguide('generate', *[a for kv in opts.items() for a in kv])
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('autoguide: error: '), r.stderr
    assert needle in lines[0], lines[0]
    assert not out.exists() and not (tmp_path / 'x.npy').exists()


def test_presets_name_missing_files_and_unknown_names(tmp_path):
    r = autoguide('generate', '--preset', 'edm2-img64-s-autog-fid', '--models', tmp_path, '--seeds', '0',
                  '--outdir', tmp_path / 'out')
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1
    assert 'edm2-img64-s-1073741-0.045.pt' in lines[0] and 'edm2-img64-xs-0134217-0.110.pt' in lines[0]
    assert 'export_edm2.py' in lines[0] and not (tmp_path / 'out').exists()
    r = autoguide('generate', '--preset', 'edm2-img64-s-autog', '--seeds', '0', '--outdir', tmp_path / 'out')
    assert r.returncode == 2 and 'unknown preset' in r.stderr and 'edm2-img64-s-autog-fid' in r.stderr
