"""The demo's second feature space and the FD interval: the bootstrap against hand-computed cases, the
encoder detector through `autoguide ref`/`fid` against numpy on the same features."""
import numpy as np
import pytest
import torch
from cli import ok, requires_bin
from conftest import ROOT

from autoguide_py import fmnist
from autoguide_py.fd_bootstrap import bootstrap_fd, bootstrap_fd_difference, feature_stats, frechet_distance

DEMO = ROOT / 'models' / 'demo'


def test_frechet_distance_in_one_dimension_is_the_closed_form():
    # (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2) for variances s1, s2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == \
        pytest.approx(4 + 4 + 9 - 2 * 6)


def test_bootstrap_interval_of_two_samples_is_hand_computed():
    # Resamples of {0, 2}: {0,0} (p 1/4) has mean 0, variance 0 -> FD 0 against N(0, 0); {0,2} (p 1/2) has
    # mean 1, unbiased variance 2 -> FD 1 + 2 = 3; {2,2} (p 1/4) -> FD 4. The full sample's FD is 3; the
    # resampled FDs have mean 2.5 and standard deviation sqrt(1/4 * 6.25 + 1/2 * 0.25 + 1/4 * 2.25) = 1.5.
    f, mu, sigma = np.array([[0.0], [2.0]]), np.zeros(1), np.zeros((1, 1))
    fd, low, high = bootstrap_fd(f, mu, sigma, resamples=4000, confidence=0.95)
    assert fd == 3.0
    assert (low, high) == pytest.approx((3 - 1.959964 * 1.5, 3 + 1.959964 * 1.5), abs=0.1)
    assert 3 - low == pytest.approx(high - 3, rel=1e-12)  # centred on the estimate, whatever the resamples' bias


def test_paired_difference_is_hand_computed():
    # b = {0, 2}, a = b + 1 from the same seeds: FD_a - FD_b = (m + 1)^2 - m^2 = 2m + 1 for a resample of mean m
    # (the variances cancel): 1, 3, 5 with p 1/4, 1/2, 1/4, standard deviation sqrt(2); unpaired it would vary far more.
    b = np.array([[0.0], [2.0]])
    diff, low, high = bootstrap_fd_difference(b + 1, b, np.zeros(1), np.zeros((1, 1)), resamples=4000)
    assert diff == 3.0
    assert (low, high) == pytest.approx((3 - 1.959964 * 2 ** 0.5, 3 + 1.959964 * 2 ** 0.5), abs=0.1)
    with pytest.raises(ValueError, match='same seeds'):
        bootstrap_fd_difference(b, b[:1], np.zeros(1), np.zeros((1, 1)))


def test_bootstrap_interval_covers_the_expected_fd_in_high_dimensions():
    # Generated features N(0.1, 1.1^2 I) in 32-D against the exact reference N(0, I), 300 samples: the expected
    # FD at N = 300 (the mean over 100 fresh draws) lies inside the 95% intervals of independent experiments,
    # where the percentile interval of the same resamples misses it (resampling raises FD in high dimensions).
    rng = np.random.default_rng(1)
    draw = lambda: rng.normal(size=(300, 32)) * 1.1 + 0.1  # noqa: E731
    ref = np.zeros(32), np.eye(32)
    expected = np.mean([frechet_distance(*feature_stats(draw()), *ref) for _ in range(100)])
    hits, pct_hits = [], []
    for k in range(20):
        f = draw()
        _, low, high = bootstrap_fd(f, *ref, resamples=60, seed=k)
        hits.append(low <= expected <= high)
        r = np.random.default_rng(k)
        v = [frechet_distance(*feature_stats(f[r.integers(0, 300, 300)]), *ref) for _ in range(60)]
        pct_hits.append(np.quantile(v, 0.025) <= expected <= np.quantile(v, 0.975))
    assert np.mean(hits) >= 0.8 and np.mean(pct_hits) <= 0.2


@pytest.mark.skipif(not (DEMO / 'encoder.pt').exists(), reason='models/demo/encoder.pt not trained')
@requires_bin
def test_encoder_detector_statistics_equal_numpy_on_its_features(tmp_path):
    images = fmnist.load('test')[0][:300]
    np.save(tmp_path / 'x.npy', images.numpy())
    ok('ref', '--detector', DEMO / 'encoder.pt', '--images', tmp_path / 'x.npy', '--out', tmp_path / 's.npz',
       '--device', 'cpu', '-q')
    with torch.no_grad():
        feats = torch.jit.load(str(DEMO / 'encoder.pt'))(images).double().numpy()
    assert feats.shape == (300, 64)
    mu, sigma = feature_stats(feats)
    s = np.load(tmp_path / 's.npz')
    assert np.allclose(s['mu'], mu, rtol=1e-5, atol=1e-6) and np.allclose(s['sigma'], sigma, rtol=1e-4, atol=1e-6)
    # `fid` against the committed training statistics equals the numpy formula on the same features.
    r = ok('fid', '--detector', DEMO / 'encoder.pt', '--images', tmp_path / 'x.npy', '--ref',
           DEMO / 'fmnist-train-stats-encoder.npz', '--json', '--device', 'cpu', '-q')
    train = np.load(DEMO / 'fmnist-train-stats-encoder.npz')
    import json
    assert json.loads(r.stdout)['fd'] == pytest.approx(frechet_distance(mu, sigma, train['mu'], train['sigma']),
                                                       rel=1e-4)


@pytest.mark.skipif(not (DEMO / 'encoder.pt').exists(), reason='models/demo/encoder.pt not trained')
def test_encoder_reference_statistics_are_those_of_the_training_set():
    images, _ = fmnist.load('train')
    encoder = torch.jit.load(str(DEMO / 'encoder.pt'))
    with torch.no_grad():
        feats = torch.cat([encoder(images[i:i + 5000]) for i in range(0, len(images), 5000)]).double().numpy()
    mu, sigma = feature_stats(feats)
    stats = np.load(DEMO / 'fmnist-train-stats-encoder.npz')
    assert int(stats['num_images']) == 60000
    scale = np.abs(sigma).max()
    assert np.abs(stats['mu'] - mu).max() < 1e-4 * np.sqrt(scale) and np.abs(stats['sigma'] - sigma).max() < 1e-4 * scale
    # The space is not degenerate: every direction of the 64-D bottleneck varies over the data.
    assert np.linalg.eigvalsh(sigma).min() > 1e-6 * scale


def test_experiment_optima_include_no_guidance_and_pairs_skip_it():
    # demo_spaces picks, per space and curve, the setting of lowest FD with the unguided one in every curve; a
    # curve whose optimum is no guidance is not compared with it (the encoder space of docs/experiments.md).
    import sys
    sys.path.insert(0, str(ROOT / 'scripts' / 'experiments'))
    import demo_spaces

    def row(label, curve, mode, classifier, encoder):
        return {'label': label, 'curve': curve, 'mode': mode, 'classifier': {'fd': classifier},
                'encoder': {'fd': encoder}}
    rows = [row('none', 'ag', 'none', 9, 14), row('ag 1.5', 'ag', 'autoguidance', 2.4, 27),
            row('ag 1.1', 'ag', 'autoguidance', 6, 14.5), row('cfg 2.4', 'cfg', 'cfg', 2.5, 56),
            row('cfg 1.2', 'cfg', 'cfg', 6, 13)]
    best = {k: v['label'] for k, v in demo_spaces.optima(rows).items()}
    assert best == {('classifier', 'ag'): 'ag 1.5', ('classifier', 'cfg'): 'cfg 2.4',
                    ('encoder', 'ag'): 'none', ('encoder', 'cfg'): 'cfg 1.2'}


def test_comparisons_pair_every_chosen_setting_once_in_every_space(tmp_path):
    # Each space's chosen settings (a curve's optimum; here the encoder space chooses no guidance for 'cfg')
    # are compared with no guidance and with each other in both spaces, each pair once, never a setting with
    # itself; the differences are those of the paired bootstrap on the files' features.
    import sys
    sys.path.insert(0, str(ROOT / 'scripts' / 'experiments'))
    import demo_spaces
    rng = np.random.default_rng(0)
    dims = {s: np.load(ROOT / stats)['mu'].shape[0] for s, (_, stats) in demo_spaces.SPACES.items()}

    def row(label, curve, mode, classifier, encoder):
        folder = str(tmp_path / label.replace(' ', '_'))
        for space, d in dims.items():
            np.save(demo_spaces.features_path(folder, space), rng.normal(size=(20, d)))
        return {'label': label, 'curve': curve, 'mode': mode, 'folder': folder, 'classifier': {'fd': classifier},
                'encoder': {'fd': encoder}}
    rows = [row('none', 'ag', 'none', 9, 7), row('ag 1.6', 'ag', 'autoguidance', 2.5, 23),
            row('ag 1.1', 'ag', 'autoguidance', 6, 6.9), row('cfg 2.4', 'cfg', 'cfg', 2.6, 50)]

    class Args:
        resamples = 5
    items = demo_spaces.comparisons(Args, rows)
    pairs = [(c['space'], c['a'], c['b']) for c in items]
    expected = [('ag 1.6', 'none'), ('cfg 2.4', 'none'), ('ag 1.1', 'none'), ('ag 1.6', 'cfg 2.4'),
                ('ag 1.6', 'ag 1.1'), ('cfg 2.4', 'ag 1.1')]
    assert pairs == [(s, a, b) for s in demo_spaces.SPACES for a, b in expected]
    ref = np.load(ROOT / demo_spaces.SPACES['encoder'][1])
    first = next(c for c in items if c['space'] == 'encoder')
    diff, _, _ = bootstrap_fd_difference(np.load(demo_spaces.features_path(rows[1]['folder'], 'encoder')),
                                         np.load(demo_spaces.features_path(rows[0]['folder'], 'encoder')),
                                         ref['mu'], ref['sigma'], resamples=5)
    assert first['fd_a_minus_b'] == pytest.approx(diff)


@requires_bin
def test_compare_runs_reports_pixel_and_paired_fd_differences(tmp_path):
    # Two folders of the same 12 test images, one with a pixel raised by 3: the largest pixel difference is 3,
    # each folder's FD is the bootstrap's on its own features, and a folder against itself differs by 0.
    import subprocess
    import sys
    from PIL import Image
    images = fmnist.load('test')[0].numpy()[:12, 0]
    for name, shift in (('a', 0), ('b', 3)):
        (tmp_path / name).mkdir()
        for i, im in enumerate(images):
            im = im.copy()
            if i == 5:
                im[10, 10] = min(255, int(im[10, 10]) + shift) if im[10, 10] < 250 else im[10, 10] - shift
            Image.fromarray(im).save(tmp_path / name / f'{i:06d}.png')
    script = str(ROOT / 'scripts' / 'compare_runs.py')
    out = subprocess.run([sys.executable, script, str(tmp_path / 'a'), str(tmp_path / 'b'), '--resamples', '20'],
                         capture_output=True, text=True, check=True).stdout
    import json
    r = json.loads(out)
    assert r['images'] == 12 and r['max_pixel_difference'] == 3
    same = json.loads(subprocess.run([sys.executable, script, str(tmp_path / 'a'), str(tmp_path / 'a'),
                                      '--resamples', '20'], capture_output=True, text=True, check=True).stdout)
    for space in ('classifier', 'encoder'):
        assert same[space]['fd_a_minus_b'] == [0, 0, 0]
        assert r[space]['fd_a'] == same[space]['fd_a']
        feats = np.load(str(tmp_path / 'a') + f'.{space}.npy')
        stats = np.load(ROOT / ('models/demo/fmnist-train-stats.npz' if space == 'classifier'
                                else 'models/demo/fmnist-train-stats-encoder.npz'))
        assert r[space]['fd_a'] == pytest.approx(list(bootstrap_fd(feats, stats['mu'], stats['sigma'], resamples=20)))
