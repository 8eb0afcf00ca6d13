"""Post-hoc EMA (scripts/autoguide_py/phema.py, scripts/phema.py) against independent numerics.

The reference here integrates the EMA weight profiles numerically (scipy.integrate.quad) and runs the
power-function EMA update on a known parameter trajectory, instead of using the closed forms under test.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
import edm2_pickle_writer as writer
from conftest import ROOT, TINY_UNCOND, make_net
from scipy import integrate, optimize

from autoguide_py import phema, training
from autoguide_py.zip_checkpoint import load_torch_checkpoint

PHEMA = ROOT / 'scripts' / 'phema.py'


def quad_profile(t, std):
    gamma = optimize.brentq(lambda g: np.sqrt((g + 1) / ((g + 2) ** 2 * (g + 3))) - std, 0.0, 1e6)
    return lambda tau: (gamma + 1) / t * (tau / t) ** gamma if 0 <= tau <= t else 0.0


def quad_dot(ta, sa, tb, sb):
    pa, pb = quad_profile(ta, sa), quad_profile(tb, sb)
    value, _ = integrate.quad(lambda tau: pa(tau) * pb(tau), 0, min(ta, tb), limit=200, epsabs=0, epsrel=1e-11)
    return value


@pytest.mark.parametrize('std', [0.01, 0.05, 0.1, 0.2, 0.28])
def test_std_and_exponent_invert_each_other(std):
    gamma = phema.std_to_exp(std)
    assert phema.exp_to_std(gamma) == pytest.approx(std, rel=1e-12)
    # The profile's relative std, integrated: sqrt(Var[tau]) / t for tau ~ p_t.
    p = quad_profile(1.0, std)
    mean = integrate.quad(lambda u: u * p(u), 0, 1, epsrel=1e-12)[0]
    var = integrate.quad(lambda u: (u - mean) ** 2 * p(u), 0, 1, epsrel=1e-12)[0]
    assert np.sqrt(var) == pytest.approx(std, rel=1e-6)


def test_std_out_of_range():
    for bad in (0, -0.1, 0.289, 1.0):
        with pytest.raises(ValueError, match='EMA std'):
            phema.std_to_exp(bad)


@pytest.mark.parametrize('ta,sa,tb,sb', [(1000, 0.05, 1000, 0.10), (300, 0.05, 1000, 0.10),
                                         (1000, 0.10, 300, 0.05), (8e6, 0.02, 2e7, 0.25)])
def test_profile_inner_product_equals_integral(ta, sa, tb, sb):
    mine = phema.profile_dot(ta, phema.std_to_exp(sa), tb, phema.std_to_exp(sb))
    assert float(mine) == pytest.approx(quad_dot(ta, sa, tb, sb), rel=1e-7)


def test_coefficients_equal_least_squares_of_integrated_profiles():
    in_t = [1000, 2000, 3000, 4000] * 2
    in_std = [0.05] * 4 + [0.10] * 4
    out = [(4000, 0.075), (3000, 0.15), (4000, 0.03)]
    gram = np.array([[quad_dot(ti, si, tj, sj) for tj, sj in zip(in_t, in_std)] for ti, si in zip(in_t, in_std)])
    cross = np.array([[quad_dot(ti, si, to, so) for to, so in out] for ti, si in zip(in_t, in_std)])
    x = np.linalg.solve(gram, cross)
    x /= x.sum(axis=0, keepdims=True)
    mine = phema.solve_coefficients(in_t, in_std, [o[0] for o in out], [o[1] for o in out])
    np.testing.assert_allclose(mine, x, rtol=1e-5, atol=1e-7)


def test_stored_average_is_reproduced_exactly():
    x = phema.solve_coefficients([500, 1000, 500, 1000], [0.05, 0.05, 0.10, 0.10], [1000], [0.10])
    np.testing.assert_allclose(x[:, 0], [0, 0, 0, 1], atol=1e-9)


class Vector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(64))


def test_reconstruction_matches_a_tracked_ema_on_a_trajectory():
    """Train-like trajectory: track EMAs at 0.05 and 0.10 with snapshots, plus the target 0.075 directly;
    the post-hoc 0.075 must land near the tracked one, much nearer than either stored average."""
    gen = torch.Generator().manual_seed(0)
    net = Vector()
    stored = phema.PowerFunctionEMA(net, [0.05, 0.10])
    target = phema.PowerFunctionEMA(net, [0.075])
    batch, steps, snaps = 16, 4000, []
    drift = torch.randn(64, generator=gen)
    for step in range(1, steps + 1):
        with torch.no_grad():
            net.p += 0.01 * drift + 0.05 * torch.randn(64, generator=gen)
        stored.update(net, step * batch, batch)
        target.update(net, step * batch, batch)
        if step % 500 == 0:
            snaps += [(step * batch, std, {'p': ema.p.detach().clone()}) for std, ema in stored.averages()]
    (rebuilt,) = phema.reconstruct(snaps, [0.075])
    want = target.nets[0].p
    err = (rebuilt['p'] - want).norm()
    nearest_stored = min((ema.p - want).norm() for _, ema in stored.averages())
    assert err < 0.02 * want.norm()
    assert err < 0.1 * nearest_stored


def test_ema_update_first_step_copies_and_weights_follow_the_profile():
    net = Vector()
    ema = phema.PowerFunctionEMA(net, [0.10])
    gamma = ema.gammas[0]
    values = torch.arange(1, 201, dtype=torch.float64)
    for step, v in enumerate(values, start=1):
        with torch.no_grad():
            net.p.fill_(float(v))
        ema.update(net, step * 8, 8)
        if step == 1:
            assert float(ema.nets[0].p[0]) == 1.0
    # The average equals sum_k w_k v_k with w_k the profile's mass on step k: prod of (1 - beta) factors.
    weights = np.zeros(200)
    for k in range(1, 201):
        w = 1 - (1 - 1 / k) ** (gamma + 1)
        weights[:k - 1] *= 1 - w
        weights[k - 1] = w
    assert float(ema.nets[0].p[0]) == pytest.approx(float(weights @ values.numpy()), rel=1e-5)
    # Step masses approach the continuous profile: weight of step k ~ integral of p over ((k-1)/n, k/n].
    p = quad_profile(1.0, 0.10)
    mass = np.array([integrate.quad(p, (k - 1) / 200, k / 200)[0] for k in range(1, 201)])
    np.testing.assert_allclose(weights[100:], mass[100:], rtol=0.02)


def run_cli(*args):
    return subprocess.run([sys.executable, str(PHEMA), *map(str, args)], capture_output=True, text=True, timeout=300)


def snapshot_series(folder, fmt):
    """Three snapshot times x two stds of a tiny EDM2 net, as our .pt checkpoints or EDM2 pickles."""
    folder.mkdir()
    for i, kimg in enumerate([2048, 4096, 6144]):
        for j, std in enumerate([0.05, 0.10]):
            net = make_net(TINY_UNCOND, seed=10 * i + j)
            if fmt == 'pt':
                training.save_checkpoint(str(folder / f'run-{kimg:07d}-{std:.3f}.pt'), net, nimg=kimg * 1000,
                                         ema_std=std)
            else:
                writer.write_edm2_pickle(folder / f'network-snapshot-{kimg:07d}-{std:.3f}.pkl', net, encoder='rgb',
                                         dtype=torch.float32)
    return folder


@pytest.mark.parametrize('fmt', ['pt', 'pkl'])
def test_cli_reconstructs_from_snapshots(tmp_path, fmt):
    indir = snapshot_series(tmp_path / 'in', fmt)
    r = run_cli('--indir', indir, '--outstd', '0.05,0.075', '--outdir', tmp_path / 'out')
    assert r.returncode == 0, r.stderr
    outs = sorted((tmp_path / 'out').iterdir())
    assert [o.name[-9:] for o in outs] == ['-0.050.pt', '-0.075.pt']
    ckpts = [load_torch_checkpoint(str(o)) for o in outs]
    # The same combination by hand: coefficients on the stored parameters, in the files' own image counts.
    files = sorted(indir.iterdir())
    inputs = []
    for f in files:
        kimg, std = int(f.name.split('-')[-2]), float(f.name.split('-')[-1][:-4])
        nimg = kimg * 1000 if fmt == 'pt' else (kimg * 1000 + 999) // 1024 * 1024
        inputs.append((nimg, std))
    nets = [make_net(TINY_UNCOND, seed=10 * (i // 2) + i % 2) for i in range(6)]
    coefs = phema.solve_coefficients([n for n, _ in inputs], [s for _, s in inputs],
                                     [max(n for n, _ in inputs)] * 2, [0.05, 0.075])
    key = 'unet.enc.8x8_conv.weight'
    for j, ckpt in enumerate(ckpts):
        want = sum(float(coefs[i, j]) * nets[i].state_dict()[key] for i in range(6))
        torch.testing.assert_close(ckpt['state_dict'][key], want, rtol=1e-5, atol=1e-6)
        assert ckpt['ema_std'] == [0.05, 0.075][j]
    # Outputs convert to model files like any checkpoint.
    r = subprocess.run([sys.executable, str(ROOT / 'scripts' / 'export_edm2.py'), str(outs[1]),
                        str(tmp_path / 'model.pt'), '-q'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize('args,message', [
    (['--outstd', '0.3'], 'out of range'),
    (['--outstd', 'abc'], 'not a list of numbers'),
    (['--outstd', '0.05', '--inprefix', 'nothing'], 'at least 2'),
    (['--outstd', '0.05', '--outkimg', '1'], 'no snapshot at or before'),
])
def test_cli_bad_input(tmp_path, args, message):
    indir = snapshot_series(tmp_path / 'in', 'pt')
    r = run_cli('--indir', indir, '--outdir', tmp_path / 'out', *args)
    assert r.returncode == 2
    assert r.stderr.startswith('error: ') and message in r.stderr and r.stderr.count('\n') == 1
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())
