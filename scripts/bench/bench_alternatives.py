#!/usr/bin/env python3
"""Time the ways of running the networks that were tried to make autoguide faster on CPU, each against
the plain eager forward it would replace: same TorchScript files, same kernels, same inputs.

  scripts/bench/bench_alternatives.py [--work out/bench32] [--res 32] [--batch 8]

Uses the S main and XS guide that scripts/bench/bench_generate.py writes into --work (run that first). Prints,
per alternative, the seconds of one evaluation of main and guide together and whether the outputs are
bit-identical to the plain forward (the fp32 path must be, to keep the reference's images):
  channels_last    weights and input in channels_last memory format (oneDNN's preferred layout)
  frozen           torch.jit.freeze + torch.jit.optimize_for_inference
  omp2             two OpenMP threads per operator (what --threads 2 does)
  halves2          the batch split in two, one half per core, one thread each (torch.jit.fork)
"""
import argparse
import os
import sys
import time
from typing import Tuple

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # this folder's modules
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import torch  # noqa: E402

from autoguide_py import edm2  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Both(torch.nn.Module):
    """Main and guide on the same input, as one autoguided evaluation."""

    def __init__(self, main, guide):
        super().__init__()
        self.main = main
        self.guide = guide

    def forward(self, x, sigma, labels) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.main(x, sigma, labels), self.guide(x, sigma, labels)


class Halves(torch.nn.Module):
    """The batch split in two; the second half runs on an inter-op thread while this one runs the first."""

    def __init__(self, both):
        super().__init__()
        self.both = both

    def forward(self, x, sigma, labels) -> Tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0] // 2
        fut = torch.jit.fork(self.both, x[n:], sigma[n:], labels[n:])
        a = self.both(x[:n], sigma[:n], labels[:n])
        b = torch.jit.wait(fut)
        return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])


def load(path):
    net = torch.jit.load(path).eval()
    net.prepare()
    return net


def to_channels_last(net):
    for sub in net.modules():
        for name in ('w_eff', 'resample_f'):
            if hasattr(sub, name) and getattr(sub, name).dim() == 4:
                setattr(sub, name, getattr(sub, name).contiguous(memory_format=torch.channels_last))
    return net


def timed(fn, args, threads, reps):
    torch.set_num_threads(threads)
    with torch.inference_mode():
        fn(*args)
        best = float('inf')
        for _ in range(reps):
            start = time.perf_counter()
            out = fn(*args)
            best = min(best, time.perf_counter() - start)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', default=os.path.join(ROOT, 'out', 'bench32'))
    ap.add_argument('--res', type=int, default=32)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--reps', type=int, default=2)
    args = ap.parse_args()
    torch.set_num_interop_threads(2)
    torch._C._set_graph_executor_optimize(False)  # as the CLI runs them
    paths = [os.path.join(args.work, f'bench-{size}-{args.res}.pt') for size in ('s', 'xs')]
    for p in paths:
        if not os.path.exists(p):
            raise SystemExit(f'error: {p} not found; run scripts/bench/bench_generate.py --work {args.work} first')
    x, sigma, labels = edm2.example_inputs(args.batch, 3, args.res, 1000)

    plain = torch.jit.script(Both(*(load(p) for p in paths))).eval()
    base, ref = timed(plain, (x, sigma, labels), 1, args.reps)
    print(f'plain (1 thread)  {base:7.2f} s')

    def report(name, seconds, out):
        same = all(torch.equal(a.contiguous(), b) for a, b in zip(out, ref))
        print(f'{name:17s} {seconds:7.2f} s  {base / seconds:5.2f}x  bit-identical: {same}', flush=True)

    report('omp2 (2 threads)', *timed(plain, (x, sigma, labels), 2, args.reps))
    report('halves2', *timed(torch.jit.script(Halves(plain)), (x, sigma, labels), 1, args.reps))
    torch._C._set_graph_executor_optimize(True)  # freezing inlines through the optimizer
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(plain))
    torch._C._set_graph_executor_optimize(False)
    report('frozen', *timed(frozen, (x, sigma, labels), 1, args.reps))
    cl = torch.jit.script(Both(*(to_channels_last(load(p)) for p in paths)))
    report('channels_last', *timed(cl, (x.contiguous(memory_format=torch.channels_last), sigma, labels), 1, args.reps))


if __name__ == '__main__':
    main()
