"""The demo's second feature space and the FD interval: the bootstrap against hand-computed cases, the
encoder detector through `autoguide ref`/`fid` against numpy on the same features."""
import numpy as np
import pytest
import torch
from cli import ok, requires_bin
from conftest import ROOT

from autoguide_py import fmnist
from autoguide_py.fd_bootstrap import bootstrap_fd, feature_stats, frechet_distance

DEMO = ROOT / 'models' / 'demo'


def test_frechet_distance_in_one_dimension_is_the_closed_form():
    # (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2) for variances s1, s2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == \
        pytest.approx(4 + 4 + 9 - 2 * 6)


def test_bootstrap_interval_of_two_samples_is_hand_computed():
    # Resamples of {0, 2}: {0,0} (p 1/4) has mean 0, variance 0 -> FD 0 against N(0, 0); {0,2} (p 1/2) has
    # mean 1, unbiased variance 2 -> FD 1 + 2 = 3; {2,2} (p 1/4) -> FD 4. The full sample's FD is 3.
    f, mu, sigma = np.array([[0.0], [2.0]]), np.zeros(1), np.zeros((1, 1))
    fd, low, high = bootstrap_fd(f, mu, sigma, resamples=4000, confidence=0.95)
    assert (fd, low, high) == (3.0, 0.0, 4.0)
    # The 30% and 70% quantiles both fall in the middle mass.
    assert bootstrap_fd(f, mu, sigma, resamples=4000, confidence=0.4)[1:] == (3.0, 3.0)


def test_bootstrap_interval_covers_the_expected_fd_in_the_demos_regime():
    # Generated features N(0.3, 1.3^2 I) in 8-D against the exact reference N(0, I), 500 samples: an FD of ~1.5
    # well above its sampling bias, as in the demo. The expected FD at N = 500 (the mean over 300 fresh draws)
    # should lie inside most 95% intervals of independent experiments.
    rng = np.random.default_rng(1)
    draw = lambda: rng.normal(size=(500, 8)) * 1.3 + 0.3  # noqa: E731
    expected = np.mean([frechet_distance(*feature_stats(draw()), np.zeros(8), np.eye(8)) for _ in range(300)])
    hits = [low <= expected <= high
            for fd, low, high in (bootstrap_fd(draw(), np.zeros(8), np.eye(8), resamples=200, seed=k) for k in range(30))]
    assert np.mean(hits) >= 0.8


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
