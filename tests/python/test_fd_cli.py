"""Every FD the CLI reports carries its interval: sweep, compare and fid against a Python reimplementation of the
bootstrap (resample rows from torch.Generator().manual_seed(0), FD with scipy's matrix square root, the normal
interval), the paired differences on common seeds, FD-inf from 1,000 images on, features spilled to disk equal to
features kept in memory, and the bad inputs of the new options.

The detector has whole-number weights (test_sweep_compare's IntLinear), so the features of an image are exact
whatever the batch: the features `fid --features-out` writes from a setting's PNGs are the ones sweep measured
while sampling."""
import csv
import json

import numpy as np
import pytest
import scipy.stats
import torch

from cli import autoguide, ok, requires_bin  # noqa: F401
from autoguide_py import fd_bootstrap
from test_sweep_compare import FAST, bad, metric  # noqa: F401  (the detector and reference statistics)

pytestmark = requires_bin

RESAMPLES = 25
RTOL = 1e-6  # the bootstrap is float64 on both sides; the FDs differ in the square root's rounding only


# ---------------------------------------------------------------------------------------------------------------
# The reference: written from the definitions in docs/metrics.md

def ref_stats(metric):
    z = np.load(metric['ref'])
    return z['mu'], z['sigma']


def fd(x, ref):
    return fd_bootstrap.frechet_distance(*fd_bootstrap.feature_stats(np.asarray(x, np.float64)), *ref)


def normal(value, resampled, confidence=0.95):
    half = scipy.stats.norm.ppf(0.5 + confidence / 2) * np.std(resampled, ddof=1)
    return {'value': value, 'lo': value - half, 'hi': value + half, 'se': float(np.std(resampled, ddof=1))}


def rows_of(gen, n):
    return torch.randint(n, (n,), generator=gen).numpy()


def interval(x, ref, resamples=RESAMPLES, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return normal(fd(x, ref), [fd(x[rows_of(gen, len(x))], ref) for _ in range(resamples)])


def paired(a, b, ref, resamples=RESAMPLES, seed=0):
    gen = torch.Generator().manual_seed(seed)
    draws = [rows_of(gen, len(a)) for _ in range(resamples)]
    return normal(fd(a, ref) - fd(b, ref), [fd(a[r], ref) - fd(b[r], ref) for r in draws])


def fd_infinity(x, ref, resamples, seed=0):
    """Chong & Forsyth's FD-inf: FDs of subsets of 15 sizes N/10..N (a permutation each), a line in 1/size, its
    intercept; the interval repeats the fit on bootstrap resamples, all draws from one generator."""
    n = len(x)
    sizes = np.linspace(n / 10, n, 15).astype(int)
    sizes[-1] = n
    gen = torch.Generator().manual_seed(seed)

    def fit(y):
        fds = [fd(y[torch.randperm(n, generator=gen).numpy()[:s]], ref) for s in sizes]
        slope, intercept = np.polyfit(1 / sizes, fds, 1)
        return intercept, slope, fds
    value, k, fds = fit(x)
    out = normal(value, [fit(x[rows_of(gen, n)])[0] for _ in range(resamples)])
    out.update(k=k, sizes=sizes.tolist(), fds=fds)
    return out


def assert_close(got, want, keys=('value', 'lo', 'hi', 'se')):
    for k in keys:
        assert got[k] == pytest.approx(want[k], rel=RTOL, abs=1e-9), (k, got, want)


def features_of(metric, images, out):
    ok('fid', '--detector', metric['detector'], '--ref', metric['ref'], '--images', images, '--features-out', out,
       '--resamples', 0, '--device', 'cpu', '--threads', 1, '-q')
    return np.load(out)


# ---------------------------------------------------------------------------------------------------------------
# sweep

def sweep(nets, metric, out, *extra):
    ok('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,2,3', '--seeds', '0-11',
       '--detector', metric['detector'], '--ref', metric['ref'], '--resamples', RESAMPLES, '--out', out, '--quiet',
       *FAST, *extra)
    return json.loads((out / 'results.json').read_text())


def test_sweep_intervals_and_differences_to_the_best(nets, metric, tmp_path):
    results = sweep(nets, metric, tmp_path / 'sweep')
    assert results['bootstrap'] == {'resamples': RESAMPLES, 'confidence': 0.95, 'seed': 0, 'fd_inf_min_images': 1000}
    ref = ref_stats(metric)
    settings = results['settings']
    feats = [features_of(metric, tmp_path / 'sweep' / s['folder'], tmp_path / f'{i}.npy') for i, s in enumerate(settings)]
    best = int(np.argmin([fd(f, ref) for f in feats]))
    for s, f in zip(settings, feats):
        e = s['estimates']['det']
        assert e['n'] == 12 and e['resamples'] == RESAMPLES and e['fd_inf'] is None  # under 1,000 images
        assert e['value'] == s['fd']
        assert_close(e, interval(f, ref))
        assert e['lo'] < e['value'] < e['hi']
        if s is settings[best]:
            assert e['vs_best'] is None
        else:
            assert e['vs_best']['b'] == settings[best]['label'] and e['vs_best']['a'] == s['label']
            assert_close(e['vs_best'], paired(f, feats[best], ref))
            verdict = 'b' if e['vs_best']['lo'] > 0 else 'unresolved'
            assert e['vs_best']['verdict'] == verdict
    with open(tmp_path / 'sweep' / 'results.csv', newline='') as fh:
        table = list(csv.DictReader(fh))
    for t, s in zip(table, settings):
        e = s['estimates']['det']
        assert [float(t[c]) for c in ('fd', 'fd_lo', 'fd_hi')] == [e['value'], e['lo'], e['hi']]
        assert t['fd-inf'] == ''
        assert float(t['fd_vs_best']) == (0 if e['vs_best'] is None else e['vs_best']['value'])


def test_spilled_features_equal_kept_ones(nets, metric, tmp_path):
    """--features-memory 0 writes every setting's features under OUT/features; the numbers do not change."""
    kept = sweep(nets, metric, tmp_path / 'kept')
    spilled = sweep(nets, metric, tmp_path / 'spilled', '--features-memory', 0)
    assert not (tmp_path / 'kept' / 'features').exists()
    for a, b in zip(kept['settings'], spilled['settings']):
        ea, eb = a['estimates']['det'], b['estimates']['det']
        assert ea['features'] is None
        assert {k: v for k, v in ea.items() if k != 'features'} == {k: v for k, v in eb.items() if k != 'features'}
        on_disk = np.load(eb['features'])
        assert on_disk.dtype == np.float32 and on_disk.shape == (12, 3)
        from_pngs = features_of(metric, tmp_path / 'spilled' / b['folder'], tmp_path / f"{b['folder']}.npy")
        assert np.array_equal(on_disk, from_pngs)
    # A second run into the same folder needs --overwrite, which replaces the spilled files.
    bad('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '2', '--seeds', '0-3',
        '--detector', metric['detector'], '--ref', metric['ref'], '--out', tmp_path / 'spilled', *FAST,
        message='already exists; add --overwrite')


# ---------------------------------------------------------------------------------------------------------------
# compare

def test_compare_differences_verdicts_and_files(nets, metric, tmp_path):
    out = tmp_path / 'cmp.png'
    r = ok('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2.5, '--uncond', nets['uncond'],
           '--cfg', 2, '--seeds', '0-9', '--detector', metric['detector'], '--ref', metric['ref'],
           '--resamples', RESAMPLES, '--out', out, '--quiet', *FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cmp.csv', 'cmp.json', 'cmp.png']
    results = json.loads((tmp_path / 'cmp.json').read_text())
    labels = [row['label'] for row in results['rows']]
    assert labels == ['none w=1.00', 'cfg w=2.00', 'autoguidance w=2.50']
    ref = ref_stats(metric)
    feats = {}
    for label, args in (('none w=1.00', []), ('cfg w=2.00', ['--gnet', nets['uncond'], '--guidance', 2]),
                        ('autoguidance w=2.50', ['--gnet', nets['guide'], '--guidance', 2.5])):
        ok('generate', '--net', nets['main'], '--seeds', '0-9', '--outdir', tmp_path / 'g' / label, '--quiet',
           *FAST, *args)
        feats[label] = features_of(metric, tmp_path / 'g' / label, tmp_path / 'g' / f'{label}.npy')
    for row in results['rows']:
        assert_close(row['estimates']['det'], interval(feats[row['label']], ref))
    # Each guided row against no guidance, then autoguidance against CFG.
    diffs = results['differences']['det']
    assert [(d['a'], d['b']) for d in diffs] == [('cfg w=2.00', 'none w=1.00'), ('autoguidance w=2.50', 'none w=1.00'),
                                                 ('autoguidance w=2.50', 'cfg w=2.00')]
    for d in diffs:
        assert_close(d, paired(feats[d['a']], feats[d['b']], ref))
        assert d['verdict'] == ('a' if d['hi'] < 0 else 'b' if d['lo'] > 0 else 'unresolved')
    # stdout: a line per row with the interval, then one verdict line built from the same differences.
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4
    for line, row in zip(lines[:3], results['rows']):
        label, cell = line.split('\t')
        e = row['estimates']['det']
        assert label == row['label'] and cell == f"fd {e['value']!r} [{e['lo']:.4g}, {e['hi']:.4g}]"
    clauses = lines[3].removeprefix('fd: ').split('; ')
    assert len(clauses) == 3
    for clause, d in zip(clauses, diffs):
        if d['verdict'] == 'unresolved':
            assert clause.startswith(f"{d['a']} vs {d['b']}: not resolved at 10 samples"), clause
        else:
            winner, loser = (d['a'], d['b']) if d['verdict'] == 'a' else (d['b'], d['a'])
            assert clause == f"{winner} beats {loser} by {abs(d['value']):.4g} " \
                             f"[{min(abs(d['lo']), abs(d['hi'])):.4g}, {max(abs(d['lo']), abs(d['hi'])):.4g}]"
    with open(tmp_path / 'cmp.csv', newline='') as fh:
        table = list(csv.DictReader(fh))
    assert [t['label'] for t in table] == labels
    assert [float(t['fd_hi']) for t in table] == [row['estimates']['det']['hi'] for row in results['rows']]
    # The outputs beside the grid are refused like the grid itself.
    (tmp_path / 'cmp.png').unlink()
    bad('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2.5, '--seeds', '0-3', '--out', out, *FAST,
        message='cmp.json already exists; add --overwrite')
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# fid

def random_images(path, n, seed):
    np.save(path, np.random.default_rng(seed).integers(0, 256, size=(n, 3, 8, 8), dtype=np.uint8))
    return path


def fid(*args):
    return json.loads(ok('fid', '--json', '--device', 'cpu', '--threads', 1, *args).stdout)


def test_fid_interval_features_out_and_paired(metric, tmp_path):
    a, b = random_images(tmp_path / 'a.npy', 30, 1), random_images(tmp_path / 'b.npy', 30, 2)
    common = ['--ref', metric['ref'], '--resamples', RESAMPLES]
    got = fid('--detector', metric['detector'], '--images', a, '--features-out', tmp_path / 'fa.npy', *common)
    fa = np.load(tmp_path / 'fa.npy')
    detector = torch.jit.load(str(metric['detector']))
    assert np.array_equal(fa, detector(torch.from_numpy(np.load(a))).float().numpy())
    ref = ref_stats(metric)
    assert_close(got['estimate'], interval(fa, ref))
    assert got['fd'] == got['estimate']['value'] and got['n'] == 30
    # A features file measures like the images it came from, with no detector.
    assert fid('--images', tmp_path / 'fa.npy', *common)['estimate'] == got['estimate']
    fb = features_of(metric, b, tmp_path / 'fb.npy')
    p = fid('--paired', f"{tmp_path / 'fa.npy'},{tmp_path / 'fb.npy'}", *common)
    assert_close(p['difference'], paired(fa, fb, ref))
    assert p['difference']['fd_a'] == pytest.approx(fd(fa, ref), rel=RTOL)
    assert_close(p['a'], interval(fa, ref))
    assert_close(p['b'], interval(fb, ref))
    # Images in, the same numbers; text output names both sets and the verdict.
    from_images = fid('--detector', metric['detector'], '--paired', f'{a},{b}', *common)['difference']
    assert {**from_images, 'a': 0, 'b': 0} == {**p['difference'], 'a': 0, 'b': 0}
    assert (from_images['a'], from_images['b']) == (str(a), str(b))
    text = ok('fid', '--paired', f"{tmp_path / 'fa.npy'},{tmp_path / 'fb.npy'}", *common).stdout
    keys = [line.split(':')[0] for line in text.strip().splitlines()]
    assert keys == ['fd_a', 'fd_b', 'difference', 'verdict'] and 'fa.npy' in text
    # Without resamples: the value alone.
    plain = fid('--images', tmp_path / 'fa.npy', '--ref', metric['ref'], '--resamples', 0)['estimate']
    assert plain['value'] == got['fd'] and plain['lo'] is None and plain['resamples'] == 0


def test_fid_fd_infinity_from_1000_images(metric, tmp_path):
    """FD-inf appears from 1,000 images on and equals the Python fit, line and interval; below, it is absent."""
    rng = np.random.default_rng(3)
    ref = ref_stats(metric)
    x = (rng.standard_normal((1000, 3)) @ np.linalg.cholesky(ref[1]).T * 1.3 + ref[0] + 2).astype(np.float32)
    np.save(tmp_path / 'x.npy', x)
    got = fid('--images', tmp_path / 'x.npy', '--ref', metric['ref'], '--resamples', 4)['estimate']['fd_inf']
    want = fd_infinity(x, ref, resamples=4)
    assert got['sizes'] == want['sizes'] and got['n'] == 1000
    assert got['fds'] == pytest.approx(want['fds'], rel=RTOL)
    assert got['k'] == pytest.approx(want['k'], rel=1e-5)
    assert_close(got, want)
    text = ok('fid', '--images', tmp_path / 'x.npy', '--ref', metric['ref'], '--resamples', 4).stdout
    assert 'fd_inf: ' in text
    np.save(tmp_path / 'y.npy', x[:999])
    assert fid('--images', tmp_path / 'y.npy', '--ref', metric['ref'], '--resamples', 4)['estimate']['fd_inf'] is None


@pytest.mark.parametrize('args,message', [
    (['--resamples', 1], '--resamples'),
    (['--confidence', 1], '--confidence'),
    (['--paired', 'A'], '--paired takes two sets'),
    (['--paired', 'A,A', '--images', 'A'], 'not both'),
    (['--paired', 'A,SHORT'], 'same seeds'),
    (['--paired', 'A,WIDE'], 'features per image'),
    (['--images', 'A', '--features-out', 'EXISTS'], 'already exists; add --overwrite'),
    (['--images', 'IMAGES'], 'needs a detector'),
])
def test_bad_fd_options(metric, tmp_path, args, message):
    rng = np.random.default_rng(0)
    files = {'A': tmp_path / 'a.npy', 'SHORT': tmp_path / 'short.npy', 'WIDE': tmp_path / 'wide.npy',
             'EXISTS': tmp_path / 'exists.npy', 'IMAGES': random_images(tmp_path / 'img.npy', 5, 0)}
    np.save(files['A'], rng.standard_normal((8, 3)).astype(np.float32))
    np.save(files['SHORT'], rng.standard_normal((7, 3)).astype(np.float32))
    np.save(files['WIDE'], rng.standard_normal((8, 4)).astype(np.float32))
    files['EXISTS'].write_bytes(b'mine')
    before = sorted(p.name for p in tmp_path.iterdir())
    bad('fid', '--ref', metric['ref'], *[str(files.get(a, a)) if a in files or ',' not in str(a) else
                                         ','.join(str(files[x]) for x in a.split(',')) for a in args],
        message=message)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert files['EXISTS'].read_bytes() == b'mine'
