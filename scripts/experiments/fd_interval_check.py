#!/usr/bin/env python3
"""How well the FD bootstrap intervals of autoguide_py.fd_bootstrap describe the FD of N samples in the demo's
regime (64-D features, N = 500): the true spread of FD over fresh draws against the bootstrap se, and how often
the normal and the percentile intervals cover the expected FD (docs/experiments.md, "Intervals").

  /usr/bin/python3 scripts/experiments/fd_interval_check.py      # about a minute
"""
import os
import sys

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # this folder's modules
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import numpy as np  # noqa: E402

from autoguide_py.fd_bootstrap import bootstrap_fd, feature_stats, frechet_distance  # noqa: E402

D, N, EXPERIMENTS, RESAMPLES = 64, 500, 30, 100


def main():
    rng = np.random.default_rng(1)
    draw = lambda: rng.normal(size=(N, D)) * 1.1 + 0.1  # noqa: E731  (generated features; the reference is N(0, I))
    ref = np.zeros(D), np.eye(D)
    fds = [frechet_distance(*feature_stats(draw()), *ref) for _ in range(200)]
    expected, sd = np.mean(fds), np.std(fds)
    normal = percentile = 0
    ses = []
    for k in range(EXPERIMENTS):
        f = draw()
        fd, low, high = bootstrap_fd(f, *ref, resamples=RESAMPLES, seed=k)
        ses.append((high - fd) / 1.959964)
        normal += low <= expected <= high
        r = np.random.default_rng(k)
        v = [frechet_distance(*feature_stats(f[r.integers(0, N, N)]), *ref) for _ in range(RESAMPLES)]
        percentile += np.quantile(v, 0.025) <= expected <= np.quantile(v, 0.975)
    print(f'{D}-D, N = {N}: expected FD {expected:.3f}, true sd {sd:.3f}, mean bootstrap se {np.mean(ses):.3f} '
          f'({np.mean(ses) / sd:.2f}x); 95% intervals covering the expected FD: normal {normal}/{EXPERIMENTS}, '
          f'percentile {percentile}/{EXPERIMENTS}')


if __name__ == '__main__':
    main()
