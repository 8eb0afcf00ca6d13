"""Tests for the 2D toy example (scripts/experiments/toy): the exact ground truth, the toy denoiser, and the exported
models running through the C++ CLI."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'scripts' / 'experiments' / 'toy'))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fractal  # noqa: E402
from model import ToyDenoiser  # noqa: E402

MODELS = ROOT / 'models' / 'toy'
BIN = Path(os.environ.get('AUTOGUIDE_BIN') or ROOT / 'build' / 'autoguide')


# ----------------------------------------------------------------------------------------------
# Ground truth.

def test_fractal_structure_and_random_stream():
    c = fractal.components()
    for cls in 'AB':
        sel = c['cls'] == cls
        assert sel.sum() == 127 * 8
        assert sorted(set(c['branch'][sel])) == list(range(127))
    # The stream is consumed in a fixed order: class A's root length is draw 0; each of A's 127 branches
    # takes one length and two child angles (the deepest level's children too), so B's root length is draw 381.
    draws = np.random.RandomState(2).randn(382)
    for cls, k in (('A', 0), ('B', 381)):
        length = 0.292 * (1 + 0.2 * draws[k])
        first = np.flatnonzero(c['cls'] == cls)[0]
        angle = np.pi * (0.25 if cls == 'A' else 1.25)
        direction = np.array([np.cos(angle), np.sin(angle)])
        expected = (fractal.ORIGIN + direction * length * 0.07) * fractal.SCALE
        np.testing.assert_allclose(c['mu'][first], expected, rtol=1e-12)
        assert c['phi'][first] == pytest.approx(length)


def test_marginal_has_mean_zero_and_std_half():
    # The paper's normalisation of the two-class distribution (sigma_data = 0.5).
    gt = fractal.ground_truth('AB')
    np.testing.assert_allclose(gt.mean().numpy(), [0, 0], atol=2e-3)
    np.testing.assert_allclose(gt.cov().diagonal().sqrt().numpy(), [0.5, 0.5], atol=2e-3)


@pytest.mark.parametrize('classes', ['A', 'AB'])
def test_density_integrates_to_one(classes):
    # Smoothed components are >= 2 grid steps wide; a Riemann sum of a Gaussian that wide is already exact
    # to ~1e-15 (its error falls like exp(-2 pi^2 (std/step)^2)), so any missing mass is a real error.
    sigma, step = 0.03, 0.015
    gt = fractal.ground_truth(classes)
    reach = 6 * float((gt.L.max() + sigma ** 2) ** 0.5)
    lo, hi = gt.mu.min(0).values - reach, gt.mu.max(0).values + reach
    xs = torch.arange(float(lo[0]), float(hi[0]), step, dtype=torch.float64)
    ys = torch.arange(float(lo[1]), float(hi[1]), step, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing='ij'), -1)
    total = float(gt.pdf(grid, sigma).sum()) * step * step
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize('sigma', [0.0, 0.003, 0.03, 0.3, 3.0])
def test_score_is_gradient_of_log_density(sigma):
    gt = fractal.ground_truth('A')
    gen = torch.Generator().manual_seed(5)
    x = torch.cat([gt.sample(64, sigma + 0.01, generator=gen),        # on the data
                   torch.randn(16, 2, dtype=torch.float64, generator=gen)])  # and off it
    h = 1e-6 * max(sigma, 0.01)
    fd = torch.stack([(gt.logp(x + h * e, sigma) - gt.logp(x - h * e, sigma)) / (2 * h)
                      for e in torch.eye(2, dtype=torch.float64)], -1)
    score = gt.score(x, sigma)
    np.testing.assert_allclose(score.numpy(), fd.numpy(), rtol=1e-5, atol=1e-5 * float(score.abs().max()))


def test_denoiser_is_tweedie():
    gt = fractal.ground_truth('A')
    x = torch.randn(8, 2, dtype=torch.float64)
    np.testing.assert_allclose(gt.denoise(x, 0.7).numpy(), (x + 0.49 * gt.score(x, 0.7)).numpy(), rtol=1e-12)


@pytest.mark.parametrize('classes,sigma', [('A', 0.0), ('AB', 0.2)])
def test_samples_have_mixture_moments(classes, sigma):
    gt = fractal.ground_truth(classes)
    n = 400_000
    x = gt.sample(n, sigma, generator=torch.Generator().manual_seed(0))
    mean, cov = gt.mean(), gt.cov(sigma)
    se = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - mean).abs() < 5 * se).all(), (x.mean(0), mean)
    # Standard error of a (co)variance estimate is about sqrt(2/n) * variance for these light-tailed mixtures.
    np.testing.assert_allclose(torch.cov(x.T).numpy(), cov.numpy(), atol=float(5 * (2 / n) ** 0.5 * cov.diagonal().max()))


# ----------------------------------------------------------------------------------------------
# Denoiser.

@pytest.mark.parametrize('label_dim', [0, 2])
def test_hand_written_score_matches_autograd(label_dim):
    torch.manual_seed(0)
    net = ToyDenoiser(hidden_dim=16, num_layers=3, label_dim=label_dim).double()
    with torch.no_grad():
        net.gain.fill_(0.8)
    x = torch.randn(32, 2, dtype=torch.float64, requires_grad=True)
    sigma = torch.exp(torch.randn(32, dtype=torch.float64))
    labels = torch.eye(2, dtype=torch.float64)[torch.randint(2, [32])] if label_dim else None
    logp, score = net.logp_and_score(x, sigma, labels)
    grad, = torch.autograd.grad(logp.sum(), x)
    np.testing.assert_allclose(score.detach().numpy(), grad.numpy(), rtol=1e-10, atol=1e-12)


def test_untrained_denoiser_is_edm_skip():
    # gain = 0: the net is exactly N(0, sigma_data^2 + sigma^2), whose denoiser is c_skip * x.
    net = ToyDenoiser(hidden_dim=8, num_layers=2).requires_grad_(False)
    x, sigma = torch.randn(5, 2, 1, 1), torch.tensor(0.8)
    np.testing.assert_allclose(net(x, sigma).numpy(), (x * 0.25 / (0.25 + 0.64)).numpy(), rtol=1e-6)


def test_scripted_denoiser_matches_eager():
    torch.manual_seed(1)
    net = ToyDenoiser(hidden_dim=16, num_layers=2, label_dim=2).eval().requires_grad_(False)
    net.gain.fill_(0.5)
    scripted = torch.jit.script(net)
    x, labels = torch.randn(6, 2, 1, 1), torch.eye(2)[[0, 1, 0, 1, 1, 0]]
    sigma = torch.rand(6) + 0.1
    with torch.inference_mode():  # as the C++ loader runs it: autograd unavailable
        out = scripted(x, sigma, labels)
    np.testing.assert_allclose(out.numpy(), net(x, sigma, labels).numpy(), rtol=1e-6, atol=1e-7)
    assert out.shape == (6, 2, 1, 1) and out.dtype == torch.float32
    np.testing.assert_allclose(scripted(x, torch.tensor(0.4), labels).numpy(),
                               scripted(x, torch.full([6], 0.4), labels).numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Committed models through the C++ CLI.

ROLES = {'main.pt': 1, 'guide.pt': 1, 'uncond.pt': 0}  # label_dim: class A alone, or A+B without labels


@pytest.mark.parametrize('name', sorted(ROLES))
def test_model_file_metadata(name):
    path = MODELS / name
    if not path.exists():
        pytest.skip(f'{path} not built (scripts/experiments/toy/train.py)')
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read(next(n for n in z.namelist() if n.endswith('extra/autoguide.json'))))
    assert meta['format_version'] == 1
    assert (meta['img_resolution'], meta['img_channels'], meta['label_dim']) == (1, 2, ROLES[name])
    assert meta['sigma_data'] == 0.5 and meta['encoder'] == {'type': 'rgb'}
    assert meta['exporter'] == 'autoguide 0.1.0' and len(meta['source_sha256']) == 64
    m = torch.jit.load(str(path))
    m.prepare()
    assert meta['param_count'] == sum(p.numel() for p in m.parameters())


def _cli(args, tmp_path, name):
    if not BIN.exists():
        pytest.skip(f'{BIN} not built (scripts/build.sh) and AUTOGUIDE_BIN not set')
    if not (MODELS / 'main.pt').exists():
        pytest.skip('models/toy not built (scripts/experiments/toy/train.py)')
    out = tmp_path / name
    r = subprocess.run([str(BIN), 'generate', '--quiet', '--device', 'cpu', '--steps', '32', '--sigma_max', '5',
                        '--npy', str(out), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return np.load(out)


def test_cli_writes_points_in_seed_order(tmp_path):
    main = str(MODELS / 'main.pt')
    three = _cli(['--net', main, '--class', '0', '--seeds', '3,1,2', '--batch', '2'], tmp_path, 'a.npy')
    one = _cli(['--net', main, '--class', '0', '--seeds', '1'], tmp_path, 'b.npy')
    assert three.shape == (3, 2, 1, 1) and three.dtype == np.float32
    np.testing.assert_allclose(three[1], one[0], atol=1e-5)
    assert np.abs(three[0] - three[1]).max() > 1e-3  # different seeds, different points


@pytest.mark.parametrize('gnet,w', [('guide.pt', 3.0), ('uncond.pt', 4.0)])
def test_cli_guided_matches_python_sampler(tmp_path, gnet, w):
    from edm_sampler_ref import draw, sample
    seeds = list(range(8))
    got = _cli(['--net', str(MODELS / 'main.pt'), '--gnet', str(MODELS / gnet), '--guidance', str(w),
                '--class', '0', '--seeds', '0-7'], tmp_path, 'g.npy')
    net, g = torch.jit.load(str(MODELS / 'main.pt')), torch.jit.load(str(MODELS / gnet))
    gens, noise, labels, _ = draw(seeds, 2, 1, ROLES['main.pt'], class_idx=0)
    glabels = labels if ROLES[gnet] else None
    with torch.inference_mode():
        ref = sample(lambda x, s, c: net(x, s, c), noise, labels, gens,
                     gnet=lambda x, s, c: g(x, s, glabels), w=w, sigma_max=5.0)
    assert got.shape == (8, 2, 1, 1)
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-4)
