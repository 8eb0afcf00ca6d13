"""`autoguide sweep` and `autoguide compare` end to end: every setting's images against `autoguide generate` with
the same weight (pixel for pixel, and the same metadata), the labelled grid's geometry, results.csv/json, the
FD of each setting against `autoguide fid` on the same images, and bad input (exit 2, one line, nothing
written)."""
import csv
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
from PIL import Image

import model_fixtures

pytestmark = requires_bin

RES = model_fixtures.RES
# Few steps keep every run well under a second; the batch is the same everywhere so that the comparisons
# with generate are exact.
FAST = ['--steps', 4, '--batch', 2, '--device', 'cpu', '--threads', 1]
FD_RTOL = 1e-9


def bad(*args, message):
    r = autoguide(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('autoguide: error: '), r.stderr
    assert message in lines[0], lines[0]
    return lines[0]


def pixels(path):
    return np.asarray(Image.open(path).convert('RGB'))


def png_parameters(path):
    data = Path(path).read_bytes()
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b'tEXt' and body.startswith(b'parameters\0'):
            return json.loads(body.split(b'\0', 1)[1].decode('latin-1'))
        pos += 12 + length
    return None


class IntLinear(torch.nn.Module):
    """Features with whole-number weights in float64: exact whatever the batch, so the FD measured while
    sampling and the FD of `autoguide fid` over the written PNGs may differ only in the statistics' rounding."""

    def __init__(self, in_features, out_features):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer('w', torch.randint(-3, 4, [in_features, out_features], generator=g).double())

    def forward(self, x):
        return x.double().flatten(1) @ self.w


@pytest.fixture(scope='session')
def metric(tmp_path_factory):
    """A detector and reference statistics of random images. Three features, so that the few samples of a test
    give full-rank covariances: with rank-deficient ones the square-root term amplifies rounding noise."""
    d = tmp_path_factory.mktemp('metric')
    detector = d / 'det.pt'
    torch.jit.script(IntLinear(3 * RES * RES, 3)).save(str(detector))
    rng = np.random.default_rng(0)
    np.save(d / 'ref.npy', rng.integers(0, 256, size=(40, 3, RES, RES), dtype=np.uint8))
    ok('ref', '--detector', detector, '--images', d / 'ref.npy', '--out', d / 'ref.npz', '--device', 'cpu', '-q')
    return {'detector': detector, 'ref': d / 'ref.npz'}


@pytest.fixture(scope='session')
def metric2(tmp_path_factory, metric):
    """A second feature space: another detector (4 features) and the same reference images' statistics in it."""
    d = metric['ref'].parent
    detector = d / 'det2.pt'
    layer = IntLinear(3 * RES * RES, 4)
    layer.w.copy_(torch.randint(-5, 6, layer.w.shape, generator=torch.Generator().manual_seed(1)).double())
    torch.jit.script(layer).save(str(detector))
    ok('ref', '--detector', detector, '--images', d / 'ref.npy', '--out', d / 'ref2.npz', '--device', 'cpu', '-q')
    return {'detector': detector, 'ref': d / 'ref2.npz'}


def fid(metric, images):
    r = ok('fid', '--json', '--detector', metric['detector'], '--ref', metric['ref'], '--images', images,
           '--device', 'cpu', '--threads', 1)
    return json.loads(r.stdout)


def generate(nets, outdir, seeds, *guidance):
    ok('generate', '--net', nets['main'], '--seeds', seeds, '--outdir', outdir, '--quiet', *FAST, *guidance)
    return outdir


def tiles(grid, rows, cols):
    """The grid's tile area (bottom right, below and right of the label margins) as [rows, cols, R, R, 3]."""
    h, w = rows * RES, cols * RES
    assert grid.shape[0] > h and grid.shape[1] > w, 'no label margins'
    t = grid[-h:, -w:]
    return t.reshape(rows, RES, cols, RES, 3).transpose(0, 2, 1, 3, 4), grid[:-h], grid[:, :-w]


def test_sweep_settings_equal_generate(nets, tmp_path):
    seeds, seed_list = '0-3,9', [0, 1, 2, 3, 9]
    out = tmp_path / 'sweep'
    ok('sweep', '--net', nets['main'], '--gnet', f"{nets['guide']},{nets['uncond']}", '--guidance', '1:2:0.5',
       '--seeds', seeds, '--outdir', out, '--quiet', *FAST)

    results = json.loads((out / 'results.json').read_text())
    assert results['commit'] and results['commit'] in ok('--version').stdout  # the build's commit, as --version says
    rows = results['settings']
    assert [(r['guide'], r['w'], r['mode'], r['folder']) for r in rows] == [
        ('guide.pt', 1.0, 'none', 'unguided-w1.00'),
        ('guide.pt', 1.5, 'autoguidance', 'guide-w1.50'),
        ('guide.pt', 2.0, 'autoguidance', 'guide-w2.00'),
        ('uncond.pt', 1.0, 'none', 'unguided-w1.00'),
        ('uncond.pt', 1.5, 'cfg', 'uncond-w1.50'),
        ('uncond.pt', 2.0, 'cfg', 'uncond-w2.00'),
    ]
    assert all('fd' not in r for r in rows)
    with open(out / 'results.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert [(t['guide'], t['w'], t['mode'], t['folder'], t['fd']) for t in table] == \
        [(r['guide'], str(r['w']).removesuffix('.0'), r['mode'], r['folder'], '') for r in rows]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ['grid.png', 'results.csv', 'results.json', 'unguided-w1.00', 'guide-w1.50', 'guide-w2.00',
         'uncond-w1.50', 'uncond-w2.00'])

    # Every setting against generate with the same guide and weight: same pixels, same parameters.
    for guide, w, folder in (('guide', 1.5, 'guide-w1.50'), ('uncond', 2.0, 'uncond-w2.00'), (None, 1, 'unguided-w1.00')):
        args = ['--gnet', nets[guide], '--guidance', w] if guide else []
        ref = generate(nets, tmp_path / f'gen-{folder}', seeds, *args)
        for s in seed_list:
            ours, theirs = out / folder / f'{s:06d}.png', ref / f'{s:06d}.png'
            assert np.array_equal(pixels(ours), pixels(theirs)), (folder, s)
            assert png_parameters(ours) == png_parameters(theirs), (folder, s)
        assert sorted(p.name for p in (out / folder).iterdir()) == [f'{s:06d}.png' for s in seed_list]

    # The grid: one row per setting, one column per seed, tiles untouched; labels on the margins.
    grid = pixels(out / 'grid.png')
    t, top, left = tiles(grid, len(rows), len(seed_list))
    for i, r in enumerate(rows):
        for j, s in enumerate(seed_list):
            assert np.array_equal(t[i, j], pixels(out / r['folder'] / f'{s:06d}.png')), (i, j)
    for margin in (top, left):
        assert (margin == 255).any() and set(np.unique(margin)) <= {32, 255}
    # Different labels on rows of the same images (w = 1 with either guide): the labels are drawn.
    lm = left.shape[1]
    top_h = grid.shape[0] - len(rows) * RES
    row_label = lambda i: grid[top_h + i * RES:top_h + (i + 1) * RES, :lm]  # noqa: E731
    assert not np.array_equal(row_label(0), row_label(3))
    assert not np.array_equal(row_label(1), row_label(2))


def test_sweep_fd_equals_fid_on_its_folders(nets, metric, tmp_path):
    out = tmp_path / 'sweep'
    ok('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,2.1', '--num', 6,
       '--detector', metric['detector'], '--ref', metric['ref'], '--outdir', out, '--quiet', *FAST)
    rows = json.loads((out / 'results.json').read_text())['settings']
    assert [r['folder'] for r in rows] == ['unguided-w1.00', 'guide-w2.10']
    for r in rows:
        assert sorted(p.name for p in (out / r['folder']).iterdir()) == [f'{s:06d}.png' for s in range(6)]
        expected = fid(metric, out / r['folder'])
        assert expected['n'] == 6
        assert r['fd'] == pytest.approx(expected['fd'], rel=FD_RTOL, abs=0)
    assert rows[0]['fd'] != rows[1]['fd']
    with open(out / 'results.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert [t['w'] for t in table] == ['1', '2.1']  # shortest spellings that read back exactly
    assert [float(t['fd']) for t in table] == [r['fd'] for r in rows]
    plot = pixels(out / 'fd.png')
    assert plot.shape == (520, 800, 3)
    assert ((plot[..., 0] == 31) & (plot[..., 1] == 119) & (plot[..., 2] == 180)).sum() > 50  # the curve
    assert (plot == 0).all(axis=-1).sum() > 200  # axes, ticks, labels
    # The grid shows the first --grid-cols seeds.
    ok('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '2.1', '--seeds', '0-5',
       '--grid-cols', 2, '--outdir', tmp_path / 'narrow', '--quiet', *FAST)
    t, _, _ = tiles(pixels(tmp_path / 'narrow' / 'grid.png'), 1, 2)
    assert np.array_equal(t[0, 1], pixels(out / 'guide-w2.10' / '000001.png'))


def test_two_feature_spaces_in_sweep_and_compare(nets, metric, metric2, tmp_path):
    """--detector/--ref pairs repeat: every setting's FD in each space equals `autoguide fid` with that space."""
    spaces = ['--detector', metric['detector'], '--ref', metric['ref'],
              '--detector', metric2['detector'], '--ref', metric2['ref']]
    out = tmp_path / 'sweep'
    ok('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,2.1', '--num', 6, *spaces,
       '--outdir', out, '--quiet', *FAST)
    results = json.loads((out / 'results.json').read_text())
    assert [s['name'] for s in results['spaces']] == ['det', 'det2']
    assert pixels(out / 'fd.png').shape == (520, 800, 3)  # a curve per space
    expected = []
    for r in results['settings']:
        assert 'fd' not in r
        want = {'det': fid(metric, out / r['folder'])['fd'], 'det2': fid(metric2, out / r['folder'])['fd']}
        assert r['fds'] == pytest.approx(want, rel=FD_RTOL, abs=0)
        assert want['det'] != pytest.approx(want['det2'], rel=1e-3)  # the spaces really differ
        expected.append(want)
    with open(out / 'results.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert [[float(t['fd[det]']), float(t['fd[det2]'])] for t in table] == \
        [[r['fds']['det'], r['fds']['det2']] for r in results['settings']]
    # compare on the same seeds: the same images, so the same FDs, printed per space.
    r = ok('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2.1, '--seeds', '0-5', *spaces,
           '--out', tmp_path / 'cmp.png', '--quiet', *FAST)
    lines = r.stdout.strip().splitlines()
    printed = [line.split('\t') for line in lines[:2]]
    assert [p[0] for p in printed] == ['none w=1.00', 'autoguidance w=2.10']
    assert [line.split(': ')[0] for line in lines[2:]] == ['fd[det]', 'fd[det2]']  # a verdict line per space
    for p, want in zip(printed, expected):
        assert [c.split(' ')[0] for c in p[1:]] == ['fd[det]', 'fd[det2]']
        got = {'det': float(p[1].split(' ')[1]), 'det2': float(p[2].split(' ')[1])}
        assert got == pytest.approx(want, rel=1e-8, abs=0)
    bad('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2.1, *spaces[:6],
        '--out', tmp_path / 'x.png', *FAST, message='each --detector needs its --ref, in the same order')
    bad('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2.1, *spaces[:4], *spaces[:4],
        '--out', tmp_path / 'x.png', *FAST, message='lists')
    assert not (tmp_path / 'x.png').exists()


def test_compare_rows_equal_generate_and_fd_per_row(nets, metric, tmp_path):
    seeds = '0-4'
    out = tmp_path / 'cmp.png'
    r = ok('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2.1, '--uncond', nets['uncond'],
           '--cfg', 1.4, '--alpha', 0.5, '--mix', 1.8, '--seeds', seeds, '--out', out,
           '--detector', metric['detector'], '--ref', metric['ref'], '--quiet', *FAST)
    assert sorted(os.listdir(tmp_path)) == ['cmp.csv', 'cmp.json', 'cmp.png']
    cases = [('none w=1.00', []),
             ('cfg w=1.40', ['--gnet', nets['uncond'], '--guidance', 1.4]),
             ('autoguidance w=2.10', ['--gnet', nets['guide'], '--guidance', 2.1]),
             ('cfg+autoguidance w=1.80 a=0.50', ['--gnet', nets['guide'], '--uncond', nets['uncond'], '--alpha', 0.5,
                                                 '--guidance', 1.8])]
    printed = [line.split('\t') for line in r.stdout.strip().splitlines() if '\t' in line]  # then the verdict
    assert [p[0] for p in printed] == [c[0] for c in cases]
    t, top, left = tiles(pixels(out), len(cases), 5)
    assert (top == 255).any() and (left == 255).any()
    for i, (label, args) in enumerate(cases):
        ref = generate(nets, tmp_path / f'gen{i}', seeds, *args)
        for j in range(5):
            assert np.array_equal(t[i, j], pixels(ref / f'{j:06d}.png')), (label, j)
        fd = float(printed[i][1].split(' ')[1])  # "fd VALUE [LO, HI]"
        assert fd == pytest.approx(fid(metric, ref)['fd'], rel=1e-8, abs=0), label  # printed with 10 digits
    # Without a detector nothing goes to stdout; rows only for the nets given.
    r = ok('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2.1, '--seeds', seeds,
           '--out', tmp_path / 'ag.png', '--quiet', *FAST)
    assert r.stdout == ''
    t, _, _ = tiles(pixels(tmp_path / 'ag.png'), 2, 5)
    assert np.array_equal(t[1, 3], pixels(tmp_path / 'gen2' / '000003.png'))


@pytest.mark.parametrize('weights,message', [
    ('1:3:0', 'step must be positive'),
    ('1:3:-0.5', 'step must be positive'),
    ('3:1:0.5', 'STOP is below START'),
    ('abc', "'abc' is not a number"),
    ('1,,2', "'' is not a number"),
    ('1:2', 'three parts'),
    ('1,-2', 'must be a finite number >= 0'),
    ('2,2', 'repeats'),
])
def test_sweep_bad_weights(nets, tmp_path, weights, message):
    out = tmp_path / 'new'
    bad('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', weights, '--outdir', out, *FAST,
        message=message)
    assert not out.exists()


def test_bad_usage_writes_nothing(nets, metric, tmp_path):
    out = tmp_path / 'new'
    sweep = ['sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,2', '--outdir', out, *FAST]
    bad(*sweep, '--detector', metric['detector'], message='needs both --detector')
    bad(*sweep, '--num', 4, message='--num sets the samples')
    bad(*sweep, '--num', 4, '--seeds', '0-2', '--detector', metric['detector'], '--ref', metric['ref'],
        message='disagree')
    bad(*sweep, '--class', 10, message='out of range')
    bad('sweep', '--net', nets['main'], '--gnet', f"{nets['guide']},{tmp_path / 'missing.pt'}", '--outdir', out,
        *FAST, message='missing.pt')
    bad('sweep', '--net', nets['main'], '--gnet', f"{nets['guide']},", '--outdir', out, *FAST, message='empty item')
    wrong_dim = tmp_path / 'ref5.npz'
    np.savez(wrong_dim, mu=np.zeros(5), sigma=np.eye(5), num_images=np.int64(10))
    bad(*sweep, '--detector', metric['detector'], '--ref', wrong_dim, message='gives 3 features')
    assert not out.exists()
    cmp_out = tmp_path / 'cmp.png'
    compare = ['compare', '--net', nets['main'], '--seeds', '0-1', '--out', cmp_out, *FAST]
    bad(*compare, '--gnet', nets['guide'], message='add --ag W')
    bad(*compare, message='nothing to compare')
    bad(*compare, '--gnet', nets['uncond'], '--ag', 2, message='--gnet must be conditioned like the main net')
    bad(*compare, '--uncond', nets['guide'], '--cfg', 1.4, message='--uncond must be an unconditional net')
    bad(*compare, '--gnet', nets['guide'], '--ag', 2, '--alpha', 0.5, message='needs both --gnet and --uncond')
    assert not cmp_out.exists()
    assert sorted(os.listdir(tmp_path)) == ['ref5.npz']


def test_existing_outputs_kept_unless_overwrite(nets, tmp_path):
    out = tmp_path / 'sweep'
    args = ['sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '2', '--seeds', '0-1',
            '--outdir', out, '--quiet', *FAST]
    ok(*args)
    stale = out / 'guide-w2.00' / '000099.png'
    stale.write_bytes((out / 'guide-w2.00' / '000000.png').read_bytes())
    before = (out / 'grid.png').read_bytes()
    bad(*args, message='already exists')
    assert (out / 'grid.png').read_bytes() == before and stale.exists()
    ok(*args, '--overwrite')
    assert sorted(p.name for p in (out / 'guide-w2.00').iterdir()) == ['000000.png', '000001.png']
    cmp_out = tmp_path / 'c.png'
    cmp_out.write_bytes(b'keep')
    bad('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2, '--out', cmp_out, *FAST,
        message='already exists')
    assert cmp_out.read_bytes() == b'keep'
