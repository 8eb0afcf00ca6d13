"""`autoguide ref` / `autoguide fid` end to end: Fréchet distance against scipy.linalg.sqrtm, precision/recall
against an independent numpy implementation, the stats file as numpy sees it, image sources, and every bad
input of the metrics issue.

Exact feature sets come from a "table" detector: each image encodes a row index in its first two pixels and
the detector returns that row of a float64 table, so the test knows the features bit for bit."""
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from cli import BIN, autoguide, ok, requires_bin  # noqa: F401
from PIL import Image

pytestmark = requires_bin

FD_RTOL = 1e-6


def fid_json(*args):
    return json.loads(ok('fid', '--json', '--device', 'cpu', '--threads', 1, *args).stdout)


def ref_stats(detector, images, out, *extra):
    ok('ref', '--detector', detector, '--images', images, '--out', out, '--device', 'cpu', '--threads', 1, '-q', *extra)
    return np.load(out)


# ---------------------------------------------------------------------------------------------------------------
# Detectors (TorchScript, as users would export them)

class Table(torch.nn.Module):
    def __init__(self, table):
        super().__init__()
        self.register_buffer('table', torch.as_tensor(table, dtype=torch.float64))

    def forward(self, x):
        index = x[:, 0, 0, 0].long() * 256 + x[:, 0, 0, 1].long()
        return self.table[index]


class Linear(torch.nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.register_buffer('w', torch.randn([in_features, out_features], generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return x.float().flatten(1) @ self.w


class NotTwoDim(torch.nn.Module):
    def forward(self, x):
        return x.float()


class WrongCount(torch.nn.Module):
    def forward(self, x):
        return x.float().flatten(1)[:1]


class FirstFeatures(torch.nn.Module):
    def forward(self, x):
        return x.float().flatten(1)[:, :5]


def save_module(module, path):
    torch.jit.script(module).save(str(path))
    return path


def index_images(rows):
    """uint8 [N,1,1,2] whose pixels encode the table rows `rows` for the Table detector."""
    rows = np.asarray(rows)
    return np.stack([rows // 256, rows % 256], axis=-1).astype(np.uint8).reshape(len(rows), 1, 1, 2)


class TableSets:
    """Feature sets stacked in one Table detector; set(name) gives an images .npy that selects its rows."""

    def __init__(self, root, sets):
        self.root, self.features, self.paths, start = root, sets, {}, 0
        for name, f in sets.items():
            self.paths[name] = root / f'{name}.npy'
            np.save(self.paths[name], index_images(np.arange(start, start + len(f))))
            start += len(f)
        self.detector = save_module(Table(np.concatenate(list(sets.values()))), root / 'table.pt')


def gaussian_with_exact_stats(rng, n, mu, sigma):
    """n samples whose sample mean is mu and sample covariance (ddof=1) is sigma, up to rounding."""
    z = rng.standard_normal((n, len(mu)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance exactly I
    return mu + z @ np.linalg.cholesky(sigma).T


def random_covariance(rng, d, spread):
    a = rng.standard_normal((d, d))
    q, _ = np.linalg.qr(a)
    return q @ np.diag(np.exp(rng.uniform(-spread, spread, d))) @ q.T


def scipy_fd(mu1, s1, mu2, s2):
    """EDM2's calculate_metrics.py formula: scipy.linalg.sqrtm of the non-symmetric product."""
    s, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False)
    return float(np.real(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * s)))


# ---------------------------------------------------------------------------------------------------------------
# Fréchet distance

FD_CASES = {
    # name: (D, N_ref, N_gen, covariance spread in log-eigenvalues, mean shift)
    'd8': (8, 300, 200, 1.0, 0.5),
    'd64-anisotropic': (64, 400, 300, 3.0, 0.1),
    'd32-same-mean': (32, 100, 150, 2.0, 0.0),
}


@pytest.mark.parametrize('case', FD_CASES)
def test_fd_matches_scipy_on_gaussians_of_known_statistics(case, tmp_path):
    d, n_ref, n_gen, spread, shift = FD_CASES[case]
    rng = np.random.default_rng(len(case))
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * shift
    s1, s2 = random_covariance(rng, d, spread), random_covariance(rng, d, spread)
    t = TableSets(tmp_path, {'ref': gaussian_with_exact_stats(rng, n_ref, mu1, s1),
                             'gen': gaussian_with_exact_stats(rng, n_gen, mu2, s2)})
    ref_stats(t.detector, t.paths['ref'], tmp_path / 'ref.npz', '--batch', 64)
    got = fid_json('--detector', t.detector, '--images', t.paths['gen'], '--ref', tmp_path / 'ref.npz', '--batch', 37)
    want = scipy_fd(mu1, s1, mu2, s2)
    print(f'{case}: FD {got["fd"]:.12g}, scipy {want:.12g}, relative error {abs(got["fd"] - want) / want:.3g}')
    assert got['fd'] == pytest.approx(want, rel=FD_RTOL)
    assert (got['n'], got['ref_n']) == (n_gen, n_ref)


def test_fd_closed_form_for_commuting_covariances(tmp_path):
    """With diagonal covariances tr sqrt(S1 S2) = sum sqrt(a_i b_i): an answer that needs no matrix root at all."""
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.1, 5, 12), rng.uniform(0.1, 5, 12)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    t = TableSets(tmp_path, {'ref': gaussian_with_exact_stats(rng, 200, mu1, np.diag(a)),
                             'gen': gaussian_with_exact_stats(rng, 200, mu2, np.diag(b))})
    ref_stats(t.detector, t.paths['ref'], tmp_path / 'ref.npz')
    got = fid_json('--detector', t.detector, '--images', t.paths['gen'], '--ref', tmp_path / 'ref.npz')['fd']
    want = np.square(mu1 - mu2).sum() + np.square(np.sqrt(a) - np.sqrt(b)).sum()
    assert got == pytest.approx(want, rel=FD_RTOL)


def test_fd_of_a_set_with_itself_is_zero(tmp_path):
    rng = np.random.default_rng(3)
    t = TableSets(tmp_path, {'x': rng.standard_normal((500, 48)) @ rng.standard_normal((48, 48)) + 10})
    ref_stats(t.detector, t.paths['x'], tmp_path / 'x.npz', '--batch', 100)
    # Different batching on the two sides: the streaming statistics must agree anyway.
    got = fid_json('--detector', t.detector, '--images', t.paths['x'], '--ref', tmp_path / 'x.npz', '--batch', 33)
    assert abs(got['fd']) < 1e-6


def test_fd_without_stats_file_uses_reference_set(tmp_path):
    rng = np.random.default_rng(4)
    t = TableSets(tmp_path, {'ref': rng.standard_normal((80, 6)), 'gen': rng.standard_normal((70, 6)) + 0.3})
    ref_stats(t.detector, t.paths['ref'], tmp_path / 's.npz')
    via_stats = fid_json('--detector', t.detector, '--images', t.paths['gen'], '--ref', tmp_path / 's.npz')
    via_images = fid_json('--detector', t.detector, '--images', t.paths['gen'], '--ref-images', t.paths['ref'])
    assert via_images['fd'] == pytest.approx(via_stats['fd'], rel=1e-9)


def test_text_output(tmp_path):
    rng = np.random.default_rng(5)
    t = TableSets(tmp_path, {'ref': rng.standard_normal((20, 4)), 'gen': rng.standard_normal((10, 4))})
    ref_stats(t.detector, t.paths['ref'], tmp_path / 's.npz')
    out = ok('fid', '--detector', t.detector, '--images', t.paths['gen'], '--ref', tmp_path / 's.npz', '-q').stdout
    lines = dict(line.split(': ') for line in out.strip().splitlines())
    assert set(lines) == {'fd', 'fd_interval', 'n', 'ref_n'} and lines['n'] == '10' and lines['ref_n'] == '20'
    assert lines['fd_interval'].endswith('(95%, 200 resamples)')
    assert float(lines['fd']) > 0


# ---------------------------------------------------------------------------------------------------------------
# The stats file

def test_stats_file_is_numpy_npz_with_mean_and_unbiased_covariance(tmp_path):
    rng = np.random.default_rng(1)
    # A large common offset: sum(x x^T) - N mu mu^T would lose most digits of the covariance here.
    f = rng.standard_normal((300, 10)) @ rng.standard_normal((10, 10)) + 1e6
    t = TableSets(tmp_path, {'x': f})
    z = ref_stats(t.detector, t.paths['x'], tmp_path / 'x.npz', '--batch', 7)
    assert sorted(z.files) == ['mu', 'num_images', 'sigma']
    assert z['mu'].dtype == np.float64 and z['sigma'].dtype == np.float64 and z['num_images'].dtype == np.int64
    assert z['mu'].shape == (10,) and z['sigma'].shape == (10, 10) and int(z['num_images']) == 300
    np.testing.assert_allclose(z['mu'], f.mean(0), rtol=1e-14)
    cov = np.cov(f, rowvar=False, ddof=1)
    assert np.abs(z['sigma'] - cov).max() <= 1e-9 * np.abs(cov).max()
    np.testing.assert_array_equal(z['sigma'], z['sigma'].T)


def test_stats_written_by_numpy_savez_are_accepted(tmp_path):
    """numpy.savez is the format's other writer (e.g. NVlabs/edm's reference statistics, without num_images)."""
    rng = np.random.default_rng(2)
    t = TableSets(tmp_path, {'ref': rng.standard_normal((60, 5)), 'gen': rng.standard_normal((50, 5))})
    z = ref_stats(t.detector, t.paths['ref'], tmp_path / 'ours.npz')
    np.savez(tmp_path / 'numpy.npz', mu=z['mu'], sigma=z['sigma'])
    # savez_compressed (pytorch-fid's and TTUR's statistics): deflated members, read back bit for bit.
    np.savez_compressed(tmp_path / 'compressed.npz', mu=z['mu'], sigma=z['sigma'])
    ours = fid_json('--detector', t.detector, '--images', t.paths['gen'], '--ref', tmp_path / 'ours.npz')
    theirs = fid_json('--detector', t.detector, '--images', t.paths['gen'], '--ref', tmp_path / 'numpy.npz')
    packed = fid_json('--detector', t.detector, '--images', t.paths['gen'], '--ref', tmp_path / 'compressed.npz')
    assert theirs['fd'] == ours['fd'] and theirs['ref_n'] is None
    assert packed['fd'] == ours['fd'] and packed['ref_n'] is None


# ---------------------------------------------------------------------------------------------------------------
# Precision and recall

def numpy_precision_recall(real, gen, k=3):
    """Kynkäänniemi et al. 2019, written directly: full distance matrices, k-th neighbour by sorting."""
    def dist(a, b):
        return np.sqrt(np.square(a[:, None, :] - b[None, :, :]).sum(-1))
    # Column 0 of each sorted row is the sample itself (distance 0), so column k is its k-th neighbour.
    r_radius = np.sort(dist(real, real), axis=1)[:, k]
    g_radius = np.sort(dist(gen, gen), axis=1)[:, k]
    precision = (dist(gen, real) <= r_radius[None, :]).any(1).mean()
    recall = (dist(real, gen) <= g_radius[None, :]).any(1).mean()
    return precision, recall


def test_precision_recall_match_numpy(tmp_path):
    rng = np.random.default_rng(11)
    real = rng.standard_normal((120, 6))
    gen = np.concatenate([rng.standard_normal((60, 6)) * 0.6 + 0.8, rng.standard_normal((30, 6)) * 1.5 - 1.0])
    t = TableSets(tmp_path, {'real': real, 'gen': gen})
    # The tool keeps features in float32, so the reference sees the same rounded values.
    want = numpy_precision_recall(real.astype(np.float32).astype(np.float64), gen.astype(np.float32).astype(np.float64))
    assert 0.05 < want[0] < 0.95 and 0.05 < want[1] < 0.95  # a case where both can be wrong
    ref_stats(t.detector, t.paths['real'], tmp_path / 'r.npz', '--features-out', tmp_path / 'r_feat.npy')
    args = ['--detector', t.detector, '--images', t.paths['gen'], '--ref', tmp_path / 'r.npz', '--pr', '--batch', 16]
    from_images = fid_json(*args, '--ref-images', t.paths['real'])
    from_features = fid_json(*args, '--ref-images', tmp_path / 'r_feat.npy')
    for got in (from_images, from_features):
        assert (got['precision'], got['recall']) == pytest.approx(want, abs=1e-12)
        assert got['k'] == 3
    np.testing.assert_array_equal(np.load(tmp_path / 'r_feat.npy'), real.astype(np.float32))


# ---------------------------------------------------------------------------------------------------------------
# Image sources

def test_png_folder_float_samples_and_uint8_npy_agree(tmp_path):
    rng = np.random.default_rng(6)
    samples = rng.uniform(-1.1, 1.1, (9, 3, 5, 4)).astype(np.float32)
    pixels = np.clip(samples * 127.5 + 128, 0, 255).astype(np.uint8)  # EDM2's decoding, truncating
    np.save(tmp_path / 'samples.npy', samples)
    np.save(tmp_path / 'pixels.npy', pixels)
    folder = tmp_path / 'pngs'
    for i, p in enumerate(pixels):  # nested folders and an unrelated file: found recursively, sorted by path
        sub = folder / f'{i // 4:02d}'
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(p.transpose(1, 2, 0)).save(sub / f'{i:04d}.png')
    (folder / 'notes.txt').write_text('not an image')
    det = save_module(Linear(3 * 5 * 4, 7), tmp_path / 'lin.pt')
    stats = {}
    for name, src in [('samples', tmp_path / 'samples.npy'), ('pixels', tmp_path / 'pixels.npy'), ('pngs', folder)]:
        stats[name] = ref_stats(det, src, tmp_path / f'{name}.npz', '--features-out', tmp_path / f'{name}_f.npy', '--batch', 4)
    for name in ('samples', 'pngs'):
        np.testing.assert_array_equal(stats[name]['sigma'], stats['pixels']['sigma'])
        np.testing.assert_array_equal(np.load(tmp_path / f'{name}_f.npy'), np.load(tmp_path / 'pixels_f.npy'))
    # The tool ran batches of 4, Python one batch of 9: on AVX-512 the float32 kernels depend on the batch shape
    # (2.7e-6 relative measured), so the bound is a few float32 roundings of the largest feature, not 1e-6.
    lin = torch.jit.load(str(det))
    want = lin(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / 'pixels_f.npy'), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one line `autoguide: error: ...`, exit 2, nothing left behind

@pytest.fixture(scope='module')
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp('bad')
    rng = np.random.default_rng(0)
    np.save(d / 'imgs.npy', rng.integers(0, 256, (6, 3, 2, 2), dtype=np.uint8))
    np.save(d / 'one.npy', rng.integers(0, 256, (1, 3, 2, 2), dtype=np.uint8))
    np.save(d / 'three.npy', rng.integers(0, 256, (3, 3, 2, 2), dtype=np.uint8))
    np.save(d / 'bigger.npy', rng.integers(0, 256, (4, 3, 3, 3), dtype=np.uint8))
    np.save(d / 'int64.npy', np.zeros((4, 3, 2, 2), np.int64))
    np.save(d / 'flat.npy', np.zeros((4, 12), np.uint8))
    np.save(d / 'feat5.npy', rng.standard_normal((6, 5)).astype(np.float32))
    (d / 'empty').mkdir()
    (d / 'mixed').mkdir()
    Image.new('RGB', (2, 2)).save(d / 'mixed' / 'a.png')
    Image.new('RGB', (3, 2)).save(d / 'mixed' / 'b.png')
    (d / 'fake_png').mkdir()
    Image.new('RGB', (2, 2)).save(d / 'fake_png' / 'a.png')
    (d / 'fake_png' / 'b.png').write_bytes(b'not a png')
    save_module(Linear(12, 4), d / 'det.pt')
    save_module(NotTwoDim(), d / 'not2d.pt')
    save_module(WrongCount(), d / 'count.pt')
    save_module(FirstFeatures(), d / 'five.pt')
    (d / 'junk.pt').write_bytes(b'not torchscript')
    ok('ref', '--detector', d / 'det.pt', '--images', d / 'imgs.npy', '--out', d / 'stats.npz', '-q')
    good = (d / 'stats.npz').read_bytes()
    z = np.load(d / 'stats.npz')
    (d / 'garbage.npz').write_bytes(os.urandom(300))
    (d / 'truncated.npz').write_bytes(good[:len(good) // 2])
    flipped = bytearray(good)
    flipped[good.find(z['sigma'].tobytes()) + 8] ^= 0xFF  # inside sigma's data: only the CRC notices
    (d / 'crc.npz').write_bytes(bytes(flipped))
    np.savez(d / 'no_sigma.npz', mu=z['mu'])
    np.savez(d / 'bad_sigma.npz', mu=z['mu'], sigma=z['sigma'][:3])
    np.savez(d / 'nan.npz', mu=z['mu'] * np.nan, sigma=z['sigma'])
    np.savez_compressed(d / 'compressed.npz', mu=z['mu'], sigma=z['sigma'])
    packed = bytearray((d / 'compressed.npz').read_bytes())
    damaged = bytearray(packed)
    with zipfile.ZipFile(d / 'compressed.npz') as z_:
        member = z_.getinfo('sigma.npy')
    local = member.header_offset  # the member's deflate data starts after its local header, name and extra
    start = local + 30 + int.from_bytes(packed[local + 26:local + 28], 'little') + \
        int.from_bytes(packed[local + 28:local + 30], 'little')
    damaged[start + member.compress_size // 2] ^= 0xFF  # it fails to inflate, or its CRC
    (d / 'compressed_damaged.npz').write_bytes(bytes(damaged))
    central = packed.find(b'PK\x01\x02')  # the first member's central record: claim 2 GiB uncompressed
    packed[central + 24:central + 28] = (1 << 31).to_bytes(4, 'little')
    (d / 'compressed_bomb.npz').write_bytes(bytes(packed))
    np.savez(d / 'dim9.npz', mu=np.zeros(9), sigma=np.eye(9))
    return d


def ref_args(d, **over):
    a = {'--detector': d / 'det.pt', '--images': d / 'imgs.npy', '--out': d / 'out' / 'stats.npz'}
    a.update(over)
    return ['ref', *[x for kv in a.items() for x in kv]]


def fid_args(d, *extra, **over):
    a = {'--detector': d / 'det.pt', '--images': d / 'imgs.npy', '--ref': d / 'stats.npz'}
    a.update(over)
    return ['fid', *[x for kv in a.items() for x in kv], *extra]


BAD = {
    'ref-empty-folder': (lambda d: ref_args(d, **{'--images': d / 'empty'}), 'holds no PNG images'),
    'ref-mixed-sizes': (lambda d: ref_args(d, **{'--images': d / 'mixed'}), 'mixed sizes'),
    'ref-unreadable-png': (lambda d: ref_args(d, **{'--images': d / 'fake_png'}), 'cannot read image'),
    'ref-one-image': (lambda d: ref_args(d, **{'--images': d / 'one.npy'}), 'at least 2'),
    'ref-int64-images': (lambda d: ref_args(d, **{'--images': d / 'int64.npy'}), 'int64'),
    'ref-2d-images': (lambda d: ref_args(d, **{'--images': d / 'flat.npy'}), '[N,C,H,W]'),
    'ref-missing-images': (lambda d: ref_args(d, **{'--images': d / 'nope.npy'}), 'does not exist'),
    'ref-detector-not-2d': (lambda d: ref_args(d, **{'--detector': d / 'not2d.pt'}), 'expected features [6,D]'),
    'ref-detector-wrong-count': (lambda d: ref_args(d, **{'--detector': d / 'count.pt'}), 'expected features'),
    'ref-detector-junk': (lambda d: ref_args(d, **{'--detector': d / 'junk.pt'}), 'not a readable TorchScript'),
    'ref-detector-fails': (lambda d: ref_args(d, **{'--images': d / 'bigger.npy'}), 'failed on uint8 [4,3,3,3]'),
    'ref-batch-zero': (lambda d: [*ref_args(d), '--batch', '0'], '--batch'),
    'fid-empty-folder': (lambda d: fid_args(d, **{'--images': d / 'empty'}), 'holds no PNG images'),
    'fid-mixed-sizes': (lambda d: fid_args(d, **{'--images': d / 'mixed'}), 'mixed sizes'),
    'fid-one-image': (lambda d: fid_args(d, **{'--images': d / 'one.npy'}), 'at least 2'),
    'fid-detector-not-2d': (lambda d: fid_args(d, **{'--detector': d / 'not2d.pt'}), 'expected features'),
    'fid-detector-other-dim': (lambda d: fid_args(d, **{'--detector': d / 'five.pt'}), 'gives 5 features'),
    'fid-stats-other-dim': (lambda d: fid_args(d, **{'--ref': d / 'dim9.npz'}), 'has 9'),
    'fid-stats-garbage': (lambda d: fid_args(d, **{'--ref': d / 'garbage.npz'}), 'not a usable .npz'),
    'fid-stats-truncated': (lambda d: fid_args(d, **{'--ref': d / 'truncated.npz'}), 'not a usable .npz'),
    'fid-stats-crc': (lambda d: fid_args(d, **{'--ref': d / 'crc.npz'}), 'CRC'),
    'fid-stats-no-sigma': (lambda d: fid_args(d, **{'--ref': d / 'no_sigma.npz'}), 'no sigma'),
    'fid-stats-bad-sigma': (lambda d: fid_args(d, **{'--ref': d / 'bad_sigma.npz'}), 'sigma must be'),
    'fid-stats-nan': (lambda d: fid_args(d, **{'--ref': d / 'nan.npz'}), 'NaN'),
    'fid-stats-compressed-damaged': (lambda d: fid_args(d, **{'--ref': d / 'compressed_damaged.npz'}), 'damaged file'),
    'fid-stats-compressed-bomb': (lambda d: fid_args(d, **{'--ref': d / 'compressed_bomb.npz'}), 'more than the 1 GiB'),
    'fid-stats-missing': (lambda d: fid_args(d, **{'--ref': d / 'nope.npz'}), 'cannot read'),
    'fid-no-reference': (lambda d: ['fid', '--detector', d / 'det.pt', '--images', d / 'imgs.npy'], '--ref'),
    'fid-pr-without-ref-images': (lambda d: fid_args(d, '--pr'), '--ref-images'),
    'fid-pr-three-images': (lambda d: fid_args(d, '--pr', **{'--images': d / 'three.npy', '--ref-images': d / 'imgs.npy'}),
                            'at least 4'),
    'fid-pr-empty-ref-folder': (lambda d: fid_args(d, '--pr', **{'--ref-images': d / 'empty'}), 'holds no PNG images'),
    'fid-pr-ref-features-other-dim': (lambda d: fid_args(d, '--pr', **{'--ref-images': d / 'feat5.npy'}), 'has 5 features'),
    'fid-pr-ref-features-uint8': (lambda d: fid_args(d, '--pr', **{'--ref-images': d / 'flat.npy'}), 'float32'),
}


@pytest.mark.parametrize('case', BAD)
def test_bad_input(case, bad):
    make_args, message = BAD[case]
    out = bad / 'out'
    out.mkdir(exist_ok=True)
    r = autoguide(*make_args(bad), '--device', 'cpu', '--threads', 1)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith('autoguide: error: ') and r.stderr.count('\n') == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert r.stdout == ''
    assert list(out.iterdir()) == []


def test_ref_refuses_to_replace_existing_output(bad, tmp_path):
    (tmp_path / 'stats.npz').write_bytes(b'keep me')
    r = autoguide(*ref_args(bad, **{'--out': tmp_path / 'stats.npz'}))
    assert r.returncode == 2 and '--overwrite' in r.stderr
    assert (tmp_path / 'stats.npz').read_bytes() == b'keep me'
    ok(*ref_args(bad, **{'--out': tmp_path / 'stats.npz'}), '--overwrite', '-q')
    assert int(np.load(tmp_path / 'stats.npz')['num_images']) == 6
