"""Snapshot sets and post-hoc EMA inside autoguide (issue 27): scripts/export_phema_set.py, and generate/sweep with
--net-ema/--gnet-ema against the reference path (scripts/phema.py + scripts/export_edm2.py, whose sums follow
NVIDIA's reconstruct_phema.py) and against independent numerics (the profiles integrated by scipy)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import integrate

import edm2_pickle_writer as writer
import model_fixtures
from cli import autoguide, ok, requires_bin  # noqa: F401
from conftest import ROOT
from test_generate_cli import png_text
from test_phema import quad_profile

from autoguide_py import phema, phema_set, training

CONVERT = ROOT / 'scripts' / 'export_phema_set.py'
KIMGS, STDS = [2048, 4096, 6144], [0.05, 0.10]


def run(script, *args):
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, timeout=300)


def guide_snapshot(i, j):
    """The fixture guide's architecture with distinct random weights per snapshot."""
    label_dim, channels, _ = model_fixtures.ROLES['guide']
    return model_fixtures.random_net(label_dim, channels, seed=100 + 10 * i + j)


def write_series(folder, fmt='pkl', kimgs=KIMGS, stds=STDS, net=guide_snapshot):
    folder.mkdir(parents=True, exist_ok=True)
    for i, kimg in enumerate(kimgs):
        for j, std in enumerate(stds):
            if fmt == 'pkl':  # EDM2's raw snapshots: fp16 EMA nets
                writer.write_edm2_pickle(folder / f'network-snapshot-{kimg:07d}-{std:.3f}.pkl', net(i, j),
                                         encoder='rgb', dtype=torch.float16)
            else:
                training.save_checkpoint(str(folder / f'guide-{kimg:07d}-{std:.3f}.pt'), net(i, j), nimg=kimg * 1024,
                                         ema_std=std)
    return folder


@pytest.fixture(scope='module')
def series(tmp_path_factory):
    """Raw snapshots, their set, the main net, and the reference guides phema.py + export_edm2.py made."""
    d = tmp_path_factory.mktemp('phema_set')
    snaps = write_series(d / 'snaps')
    r = run(CONVERT, snaps, d / 'set.pt')
    assert r.returncode == 0, r.stderr
    _, main = model_fixtures.export_role('main', str(d))
    refs = {}
    for key, extra in (('0.075', []), ('0.075-fp32', ['--fp32']), ('0.150@4096', ['--outkimg', '4096'])):
        std = key.split('-')[0].split('@')[0]
        out = d / f'ref-{key}'
        r = run(ROOT / 'scripts' / 'phema.py', '--indir', snaps, '--outstd', std, '--outdir', out, *extra)
        assert r.returncode == 0, r.stderr
        (ckpt,) = out.iterdir()
        r = run(ROOT / 'scripts' / 'export_edm2.py', ckpt, d / f'guide-{key}.pt', '-q')
        assert r.returncode == 0, r.stderr
        refs[key] = d / f'guide-{key}.pt'
    return dict(dir=d, snaps=snaps, set=d / 'set.pt', main=main, refs=refs)


def pixels(path):
    from PIL import Image
    return np.asarray(Image.open(path))


def profiles():
    return [(phema_set.edm2_nimg(k), s) for k in KIMGS for s in STDS]


# ----------------------------------------------------------------------------
# The converter.


def test_set_holds_every_snapshot_in_order_with_its_weights(series):
    files = {'autoguide.json': ''}
    module = torch.jit.load(str(series['set']), _extra_files=files)
    meta = json.loads(files['autoguide.json'])
    assert meta['kind'] == 'snapshot_set' and meta['label_dim'] == model_fixtures.LABELS
    assert [(s['nimg'], s['ema_std']) for s in meta['snapshots']] == profiles()
    for k, (i, j) in enumerate((i, j) for i in range(3) for j in range(2)):
        want = guide_snapshot(i, j).state_dict()
        got = module.snapshots[k]
        assert set(got) == set(want)
        for name, tensor in want.items():
            assert got[name].dtype == torch.float16 and torch.equal(got[name], tensor.to(torch.float16)), name


def test_converter_reads_our_training_snapshots(tmp_path):
    snaps = write_series(tmp_path / 'pt', fmt='pt')
    r = run(CONVERT, snaps, tmp_path / 'set.pt')
    assert r.returncode == 0, r.stderr
    files = {'autoguide.json': ''}
    torch.jit.load(str(tmp_path / 'set.pt'), _extra_files=files)
    meta = json.loads(files['autoguide.json'])
    assert [(s['nimg'], s['ema_std']) for s in meta['snapshots']] == [(k * 1024, s) for k in KIMGS for s in STDS]


def other_architecture(i, j):
    return model_fixtures.random_net(model_fixtures.LABELS, 32, seed=i) if (i, j) == (2, 1) else guide_snapshot(i, j)


@pytest.mark.parametrize('case,message', [
    ('missing_profile', 'lacks the EMA 0.100 snapshot at 4096000 images'),
    ('one_profile', 'holds one EMA profile'),
    ('mixed_architectures', 'different architectures'),
    ('one_snapshot', 'post-hoc EMA needs at least 2'),
])
def test_converter_refuses_bad_series(tmp_path, case, message):
    snaps = write_series(tmp_path / 'in', net=other_architecture if case == 'mixed_architectures' else guide_snapshot)
    victims = {'missing_profile': ['network-snapshot-0004096-0.100.pkl'],
               'one_profile': [f'network-snapshot-{k:07d}-0.100.pkl' for k in KIMGS],
               'mixed_architectures': [],
               'one_snapshot': [p.name for p in snaps.iterdir()][1:]}[case]
    for name in victims:
        (snaps / name).unlink()
    r = run(CONVERT, snaps, tmp_path / 'out' / 'set.pt')
    (tmp_path / 'out').mkdir(exist_ok=True)
    assert r.returncode == 2 and r.stderr.startswith('error: ') and r.stderr.count('\n') == 1, r.stderr
    assert message in r.stderr
    assert not any((tmp_path / 'out').iterdir())


# ----------------------------------------------------------------------------
# Coefficients and residual against independent numerics.


def quad_residual(coefs, used, wanted):
    """||sum c_k p_k - p|| / ||p|| with every profile integrated numerically."""
    ps = [quad_profile(t, s) for t, s in used]
    p = quad_profile(*wanted)
    breaks = sorted({t for t, _ in used} | {wanted[0]})
    f = lambda tau: (sum(c * q(tau) for c, q in zip(coefs, ps)) - p(tau)) ** 2  # noqa: E731
    err = sum(integrate.quad(f, a, b, limit=200, epsrel=1e-10)[0] for a, b in zip([0] + breaks, breaks))
    norm = integrate.quad(lambda tau: p(tau) ** 2, 0, wanted[0], limit=200, epsrel=1e-12)[0]
    return np.sqrt(err / norm)


@requires_bin
@pytest.mark.parametrize('ema,kimg', [('0.075', None), ('0.15', 4096), ('0.02', None), ('0.25', 2048)])
def test_coefficients_and_residual_match_python(series, tmp_path, ema, kimg):
    spec = ema if kimg is None else f'{ema}@{kimg}'
    ok('generate', '--net', series['set'], '--net-ema', spec, '--seeds', '0', '--steps', '2', '--out', tmp_path / 'o',
       '--quiet')
    m = json.loads((tmp_path / 'o' / 'manifest.json').read_text())
    nimg = phema_set.edm2_nimg(kimg or KIMGS[-1])
    used = [(t, s) for t, s in profiles() if t <= nimg]
    want = phema.solve_coefficients([t for t, _ in used], [s for _, s in used], [nimg], [float(ema)])[:, 0]
    got = np.array(m['net_ema_coefficients'])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    assert m['net_ema']['std'] == float(ema) and m['net_ema']['nimg'] == nimg and m['net_ema']['kimg'] == nimg // 1000
    residual = quad_residual(want, used, (nimg, float(ema)))
    assert m['net_ema']['fit_residual'] == pytest.approx(residual, rel=1e-4, abs=1e-7)
    meta = json.loads(png_text(tmp_path / 'o' / '000000.png')['parameters'])
    assert meta['net_ema'] == m['net_ema']


# ----------------------------------------------------------------------------
# Images: the set at an EMA length equals the reference net phema.py + export_edm2.py wrote.


@requires_bin
@pytest.mark.parametrize('key,args', [('0.075', ['--gnet-ema', '0.075']),
                                      ('0.075-fp32', ['--gnet-ema', '0.075', '--ema-precision', 'fp32']),
                                      ('0.150@4096', ['--gnet-ema', '0.15@4096']),
                                      # Streamed from the file (the set exceeds 1 MB), one snapshot at a time.
                                      ('0.075', ['--gnet-ema', '0.075', '--ema-memory', '1']),
                                      ('0.075-fp32', ['--gnet-ema', '0.075', '--ema-precision', 'fp32',
                                                      '--ema-memory', '1'])])
def test_generate_from_set_equals_generate_from_reconstructed_net(series, tmp_path, key, args):
    assert series['set'].stat().st_size > 2**20  # so that --ema-memory 1 streams it
    common = ['--net', series['main'], '--guidance', '2.5', '--seeds', '0-5', '--steps', '8', '--quiet']
    ok('generate', *common, '--gnet', series['refs'][key], '--out', tmp_path / 'ref')
    ok('generate', *common, '--gnet', series['set'], *args, '--out', tmp_path / 'set')
    for seed in range(6):
        a, b = pixels(tmp_path / 'ref' / f'{seed:06d}.png'), pixels(tmp_path / 'set' / f'{seed:06d}.png')
        assert np.array_equal(a, b), seed
    meta = json.loads(png_text(tmp_path / 'set' / '000003.png')['parameters'])
    assert meta['gnet'] == 'set.pt' and meta['gnet_ema']['precision'] == ('fp32' if 'fp32' in key else 'stored')
    # The stored rounding matters: fp16 and fp32 sums give different guides, hence different images.
    if key == '0.075':
        ok('generate', *common, '--gnet', series['set'], '--gnet-ema', '0.075', '--ema-precision', 'fp32',
           '--out', tmp_path / 'fp32')
        assert any(not np.array_equal(pixels(tmp_path / 'set' / f'{s:06d}.png'), pixels(tmp_path / 'fp32' / f'{s:06d}.png'))
                   for s in range(6))


# ----------------------------------------------------------------------------
# Bad lengths and bad sets: one line naming the value or file and the fix, exit 2, nothing written.


def damaged_sets(series, folder):
    """Sets that the converter would refuse, written past its checks, and a truncated file."""
    snaps = sorted((phema_set.read_snapshot(str(p)) for p in series['snaps'].iterdir()), key=lambda s: (s.nimg, s.std))
    out = {}
    out['missing_profile'] = folder / 'missing.pt'
    phema_set.write_snapshot_set([s for s in snaps if (s.nimg, s.std) != (phema_set.edm2_nimg(4096), 0.1)],
                                 str(out['missing_profile']), 'test')
    mixed = list(snaps)
    net = model_fixtures.random_net(model_fixtures.LABELS, 32, seed=9)
    mixed[0] = phema_set.Snapshot(mixed[0].path, mixed[0].nimg, mixed[0].std, net, mixed[0].encoder, '')
    out['mixed_architectures'] = folder / 'mixed.pt'
    phema_set.write_snapshot_set(mixed, str(out['mixed_architectures']), 'test')
    data = series['set'].read_bytes()
    out['truncated'] = folder / 'truncated.pt'
    out['truncated'].write_bytes(data[:len(data) // 2])
    return out


@requires_bin
def test_bad_sets_and_lengths_are_refused(series, tmp_path):
    sets = damaged_sets(series, tmp_path)
    cases = [
        (['--net', series['set'], '--net-ema', '0.3'], '--net-ema 0.3 is outside'),
        (['--net', series['set'], '--net-ema', '0.005'], 'choose --net-ema in [0.010, 0.250]'),
        (['--net', series['set'], '--net-ema', '0.1@1000'], 'kimg 1000 is before the first snapshot'),
        (['--net', series['set'], '--net-ema', '0.1@3000'], "kimg 3000 is no snapshot's length"),
        (['--net', series['set'], '--net-ema', '0.1@x'], 'after @ give'),
        (['--net', series['set']], 'is a snapshot set: choose the post-hoc EMA length to build with --net-ema'),
        (['--net', series['main'], '--gnet', series['set'], '--guidance', '2'], 'with --gnet-ema'),
        (['--net', series['main'], '--net-ema', '0.1'], 'is a single net, not a snapshot set: drop --net-ema'),
        (['--net', sets['missing_profile'], '--net-ema', '0.1'], 'lacks the EMA 0.100 snapshot at 4096000 images'),
        (['--net', sets['mixed_architectures'], '--net-ema', '0.1'], 'does not fit the net'),
        (['--net', sets['truncated'], '--net-ema', '0.1'], 'truncated.pt'),
        (['--net', series['set'], '--net-ema', '0.1', '--ema-memory', '0'], '--ema-memory: must be a whole number'),
        (['--net', series['set'], '--net-ema', '0.05,0.1'], '--net-ema takes one EMA length here'),
    ]
    # Each case resident and streamed (--ema-memory 1: the sets are over 1 MB), which reads the file otherwise.
    cases += [(args + ['--ema-memory', '1'], message) for args, message in cases if '--ema-memory' not in args]
    for args, message in cases:
        out = tmp_path / 'out'
        r = autoguide('generate', *args, '--seeds', '0', '--steps', '2', '--out', out)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith('autoguide: error:'), (args, r.stderr)
        assert message in lines[0], (args, lines[0])
        assert not out.exists(), args


# ----------------------------------------------------------------------------
# EMA as a sweep axis.


@requires_bin
def test_sweep_crosses_ema_lengths_with_weights_and_rows_equal_generate(series, tmp_path):
    common = ['--net', series['main'], '--seeds', '0-3', '--steps', '6', '--quiet']
    ok('sweep', *common, '--gnet', series['set'], '--gnet-ema', '0.05:0.1:0.025', '--guidance', '1,2',
       '--out', tmp_path / 'sweep')
    results = json.loads((tmp_path / 'sweep' / 'results.json').read_text())
    rows = [(r['guide'], r['w']) for r in results['settings']]
    assert rows == [(f'set.pt ema={e}', w) for e in ('0.050', '0.075', '0.100') for w in (1, 2)]
    assert [r['guide_ema']['std'] for r in results['settings']] == [0.05, 0.05, 0.075, 0.075, 0.1, 0.1]
    row = next(r for r in results['settings'] if r['guide'] == 'set.pt ema=0.075' and r['w'] == 2)
    assert row['folder'] == 'set-ema0.075-w2.00'
    ok('generate', *common, '--gnet', series['set'], '--gnet-ema', '0.075', '--guidance', '2', '--out', tmp_path / 'gen')
    for seed in range(4):
        a = pixels(tmp_path / 'sweep' / row['folder'] / f'{seed:06d}.png')
        assert np.array_equal(a, pixels(tmp_path / 'gen' / f'{seed:06d}.png')), seed
    # Distinct lengths are distinct guides: their guided images differ.
    other = pixels(tmp_path / 'sweep' / 'set-ema0.050-w2.00' / '000000.png')
    assert not np.array_equal(other, pixels(tmp_path / 'gen' / '000000.png'))


@requires_bin
def test_sweep_crosses_main_and_guide_lengths_and_rows_equal_generate(series, tmp_path):
    """--net-ema as an axis: main lengths x guide lengths x weights, each row the images generate makes."""
    common = ['--seeds', '0-2', '--steps', '5', '--quiet']
    sweep = ['sweep', *common, '--net', series['set'], '--net-ema', '0.05,0.1', '--gnet', series['set'],
             '--gnet-ema', '0.075,0.15', '--guidance', '1,2']
    ok(*sweep, '--out', tmp_path / 'sweep')
    results = json.loads((tmp_path / 'sweep' / 'results.json').read_text())
    got = [(r['label'], r['folder'], r['net_ema']['std'], r['guide_ema']['std']) for r in results['settings']]
    want = []
    for m in ('0.050', '0.100'):
        for g in ('0.075', '0.150'):
            for w in ('1.00', '2.00'):
                folder = f'main-ema{m}-' + ('unguided-w1.00' if w == '1.00' else f'set-ema{g}-w{w}')
                want.append((f'main ema={m} set.pt ema={g} w={w}', folder, float(m), float(g)))
    assert got == want
    assert 'net_ema' not in results  # several main lengths: recorded per row
    ok('generate', *common, '--net', series['set'], '--net-ema', '0.1', '--gnet', series['set'], '--gnet-ema', '0.15',
       '--guidance', '2', '--out', tmp_path / 'gen')
    folder = tmp_path / 'sweep' / 'main-ema0.100-set-ema0.150-w2.00'
    for seed in range(3):  # the PNG bytes, metadata included
        assert (folder / f'{seed:06d}.png').read_bytes() == (tmp_path / 'gen' / f'{seed:06d}.png').read_bytes(), seed
    # The main length matters: the other main length's row at the same guide differs.
    other = tmp_path / 'sweep' / 'main-ema0.050-set-ema0.150-w2.00' / '000000.png'
    assert not np.array_equal(pixels(other), pixels(tmp_path / 'gen' / '000000.png'))
    # Streamed (every length built in one pass over the file): the same files, bit for bit.
    assert series['set'].stat().st_size > 2**20
    ok(*sweep, '--ema-memory', '1', '--out', tmp_path / 'streamed')
    for png in sorted((tmp_path / 'sweep').rglob('*.png')):
        twin = tmp_path / 'streamed' / png.relative_to(tmp_path / 'sweep')
        assert png.read_bytes() == twin.read_bytes(), png
