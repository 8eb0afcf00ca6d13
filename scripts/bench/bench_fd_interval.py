#!/usr/bin/env python3
"""What an FD's interval, FD-inf and a paired difference cost: `autoguide fid` on features files, end to end.

Two sizes: the demo's (2,000 samples; 128 features, the demo classifier's, and 64, the encoder's) at the
default 200 resamples, and Inception's (50,000 x 2048). At Inception size a full run takes hours on 2 cores,
so it is timed at --resamples 0 and 2 and the rest follows from the cost model the code has (docs/metrics.md):
  interval:  (R + 1) FDs of N rows
  FD-inf:    15 (R + 1) FDs of N/10 .. N rows (from 1,000 images)
  paired:    2 (R + 1) FDs of N rows
where one FD of n rows costs a covariance (n D^2) and a D x D symmetric eigendecomposition. Those two parts
are timed alone too (torch, float64, the same LibTorch), as a second way to the same totals.

Each figure: one warm-up run, then the median of --reps runs. Prints the CPU (lscpu) with the figures.

  scripts/bench/bench_fd_interval.py [--reps 3] [--big] [--skip-small] [--work DIR]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get('AUTOGUIDE_BIN', os.path.join(ROOT, 'build', 'autoguide'))


def cpu_name():
    out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    name = next((line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('Model name')), '?')
    flags = [f for f in ('avx512f', 'avx512_bf16', 'amx_bf16') if f' {f}' in out]
    return f"{name} ({', '.join(flags) or 'AVX2 only'}), {os.cpu_count()} CPUs"


def timed(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def make_set(work, n, d, seed):
    """Features [n, d] (float32) and reference statistics a little apart from them."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((d, d)) / np.sqrt(d)
    feats = (rng.standard_normal((n, d)) @ base + 0.1).astype(np.float32)
    other = feats + 0.05 * rng.standard_normal((n, d)).astype(np.float32)
    ref = rng.standard_normal((max(n, 2 * d), d)) @ base
    paths = {k: os.path.join(work, f'{k}-{n}x{d}.npy') for k in ('a', 'b')}
    np.save(paths['a'], feats)
    np.save(paths['b'], other)
    paths['ref'] = os.path.join(work, f'ref-{n}x{d}.npz')
    np.savez(paths['ref'], mu=ref.mean(0), sigma=np.cov(ref, rowvar=False), num_images=np.int64(len(ref)))
    return paths


def fid(*args):
    r = subprocess.run([BIN, 'fid', '--json', '--device', 'cpu', *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stderr)
    return json.loads(r.stdout)


def parts(n, d, reps):
    """Seconds of one covariance of n x d rows and one d x d eigendecomposition, float64."""
    x = torch.randn(n, d, dtype=torch.float64)
    cov, _ = timed(lambda: torch.cov(x.T), reps)
    s = torch.cov(x.T)
    eig, _ = timed(lambda: torch.linalg.eigh(s), reps)
    return cov, eig


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--big', action='store_true', help='also 50,000 x 2048 (about 30 minutes on 2 cores)')
    ap.add_argument('--skip-small', action='store_true', help='not the demo sizes')
    ap.add_argument('--work', default=None)
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix='bench_fd_')
    print(f'CPU: {cpu_name()}; torch threads {torch.get_num_threads()}')
    print('| features | resamples | what | seconds (median) | runs |')
    print('|---|---:|---|---:|---|')
    for n, d in () if args.skip_small else ((2000, 128), (2000, 64)):
        p = make_set(work, n, d, seed=d)
        for what, cmd in (('FD + interval + FD-inf', ['--images', p['a']]),
                          ('paired difference (+ both FDs)', ['--paired', f"{p['a']},{p['b']}"])):
            med, runs = timed(lambda: fid(*cmd, '--ref', p['ref'], '--resamples', 200), args.reps)
            print(f"| {n} x {d} | 200 | {what} | {med:.2f} | {', '.join(f'{t:.2f}' for t in runs)} |")
    if args.big:
        n, d = 50000, 2048
        p = make_set(work, n, d, seed=1)
        measured = {}
        for r in (0, 2):
            med, runs = timed(lambda: fid('--images', p['a'], '--ref', p['ref'], '--resamples', r), max(1, args.reps - 2))
            measured[r] = med
            print(f"| {n} x {d} | {r} | FD + interval + FD-inf | {med:.1f} | {', '.join(f'{t:.1f}' for t in runs)} |")
        per_resample = (measured[2] - measured[0]) / 2
        print(f'per resample (interval + FD-inf refit): {per_resample:.1f} s; at 200 resamples: '
              f'{(measured[0] + 200 * per_resample) / 3600:.2f} h')
        cov_full, eig = parts(n, d, 1)
        sizes = np.linspace(n / 10, n, 15).astype(int)
        one_fd = cov_full + eig
        fd_inf = sum(cov_full * s / n + eig for s in sizes)
        print(f'parts: covariance of {n} x {d} {cov_full:.2f} s, eigh {d} {eig:.2f} s; model per resample '
              f'{one_fd + fd_inf:.1f} s, at 0 resamples {one_fd + fd_inf:.1f} s')


if __name__ == '__main__':
    main()
