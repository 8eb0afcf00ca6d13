"""Numerical faults end to end: a net that produces NaN ends the run with exit 1 and one line naming the net,
step and sigma, before anything made from it is written; option values beyond float32 are usage errors."""
import re

import numpy as np
import pytest
import torch

from cli import autoguide, ok, requires_bin

import model_fixtures

pytestmark = requires_bin


@pytest.fixture(scope='module')
def faulty(tmp_path_factory):
    d = tmp_path_factory.mktemp('faulty')
    return dict(nan_guide=model_fixtures.export_nan_guide(str(d)),
                faulty=model_fixtures.export_faulty_net(str(d), model_fixtures.FAULTY_BELOW))


def karras_float32(n, smin=0.002, smax=80.0, rho=7.0):
    """EDM's schedule in the reference's float32 arithmetic."""
    i = torch.arange(n, dtype=torch.float32)
    return ((smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho).tolist()


def one_error_line(r, code):
    # In a log (stderr a pipe) the progress lines of the batches before the failure come first.
    lines = [line for line in r.stderr.strip().splitlines() if not re.search(r'  \d+%  elapsed .* ETA ', line)]
    assert r.returncode == code and len(lines) == 1 and lines[0].startswith('autoguide: error: '), r.stderr
    return lines[0][len('autoguide: error: '):]


def test_nan_guide_exits_1_and_writes_no_image_grid_or_npy(nets, faulty, tmp_path):
    out, grid, npy = tmp_path / 'out', tmp_path / 'grid.png', tmp_path / 'x.npy'
    r = autoguide('generate', '--net', nets['main'], '--gnet', faulty['nan_guide'], '--guidance', '2',
                  '--seeds', '0-3', '--steps', '4', '--outdir', out, '--grid', grid, '--npy', npy)
    message = one_error_line(r, 1)
    assert message.startswith(f"the guiding net ({faulty['nan_guide']}) produced NaN or Inf at step 1/4 (sigma 80)")
    assert not grid.exists() and not npy.exists() and (not out.exists() or not any(out.iterdir()))


def test_net_breaking_mid_run_keeps_the_earlier_batches_exactly(faulty, tmp_path):
    args = ['--net', faulty['faulty'], '--batch', '1', '--steps', '32']
    r = autoguide('generate', *args, '--seeds', '0-3', '--outdir', tmp_path / 'out', '--grid', tmp_path / 'g.png')
    message = one_error_line(r, 1)
    sigmas = karras_float32(32)
    j = next(k for k, s in enumerate(sigmas) if s < model_fixtures.FAULTY_BELOW)
    # Heun evaluates sigma_j first as the correction of step j-1, which the progress line calls step j.
    assert message.startswith(f"the main net ({faulty['faulty']}) produced NaN or Inf at step {j}/32 "
                              f'(sigma {sigmas[j]:g})'), message
    # Seeds 0 and 1 come before the failing seed 2: their images stay, byte for byte those of a clean run.
    ok('generate', *args, '--seeds', '0-1', '--outdir', tmp_path / 'clean')
    kept = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert kept == ['000000.png', '000001.png'] and not (tmp_path / 'g.png').exists()
    for name in kept:
        assert (tmp_path / 'out' / name).read_bytes() == (tmp_path / 'clean' / name).read_bytes()


def test_sweep_stops_on_a_nan_guide_before_the_grid_and_results(nets, faulty, tmp_path):
    out = tmp_path / 'sweep'
    r = autoguide('sweep', '--net', nets['main'], '--gnet', faulty['nan_guide'], '--guidance', '1,2',
                  '--seeds', '0-1', '--steps', '4', '--outdir', out, '--quiet')
    assert f"guiding net ({faulty['nan_guide']}) produced NaN or Inf at step 1/4" in one_error_line(r, 1)
    # The unguided row (w = 1 never runs the guide) was finished; nothing of the w = 2 row, no grid, no results.
    assert sorted(p.relative_to(out).parts[0] for p in out.rglob('*.png')) == ['unguided-w1.00'] * 2
    assert not any((out / name).exists() for name in ('grid.png', 'results.csv', 'results.json'))


OVERFLOW = {  # option values that fit a double but not float32, or make a schedule that does not
    '--guidance': ['--guidance', '1e308', '--gnet', '{guide}'],
    '--sigma_max': ['--sigma_max', '1e39'],
    '--sigma_min': ['--sigma_min', '1e-50'],
    '--rho': ['--rho', '0.01'],
    '--S_churn': ['--S_churn', '1e39'],
    '--S_noise': ['--S_noise', '-1e39'],
    '--S_min': ['--S_min', '1e39'],
    '--S_max': ['--S_max', '1e300'],
}


@pytest.mark.parametrize('option', OVERFLOW)
def test_values_beyond_float32_are_usage_errors(option, nets, tmp_path):
    extra = [a.format(guide=nets['guide']) for a in OVERFLOW[option]]
    out = tmp_path / 'out'
    r = autoguide('generate', '--net', nets['main'], '--seeds', '0-1', '--steps', '4', '--outdir', out,
                  '--npy', tmp_path / 'x.npy', *extra)
    message = one_error_line(r, 2)
    assert option in message and 'float32' in message, message
    assert not out.exists() and not (tmp_path / 'x.npy').exists()


def test_sweep_weights_beyond_float32_are_usage_errors(nets, tmp_path):
    r = autoguide('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,1e39',
                  '--seeds', '0-1', '--steps', '4', '--outdir', tmp_path / 'sweep')
    assert '--guidance 1e+39 is outside float32' in one_error_line(r, 2)
    assert not (tmp_path / 'sweep').exists()


def test_weight_that_fits_float32_but_overflows_sampling_ends_with_exit_1(nets, tmp_path):
    # 3.4e38 passes validation (float32's own bound); the first step then pushes x past float32's range.
    r = autoguide('generate', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '3.4e38',
                  '--seeds', '0', '--steps', '4', '--npy', tmp_path / 'x.npy')
    assert one_error_line(r, 1).startswith('the sampler state became NaN or Inf before the main net ran at step 2/4')
    assert not (tmp_path / 'x.npy').exists()
