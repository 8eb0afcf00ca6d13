#!/usr/bin/env python3
"""How fast the exported nets could run on this CPU, and how fast autoguide runs them (exact and --fast).

For every convolution and matrix-product shape an EDM2 net contains (enumerated with forward hooks on the
same architecture), the harness times each way LibTorch can compute it (NCHW and channels_last
convolutions, a 1x1 convolution as a batched matrix product, attention as einsum or as two batched
products on contiguous operands), per precision, with warm-up and repetitions, and keeps the best. The
bound of a net is the sum over its layers of (calls x best time): the time the net would take if every
layer ran at its best layout and kernel with nothing else costing anything. Pointwise work is not in it,
so a net can never reach 100%.

The nets' own times come from `autoguide generate` (exact and --fast) on the same files, threads and BLAS,
in the same run; the cross-check is the harness's time for the exact path's own kernels against the
profiler's time for those operators in one exported forward.

  scripts/bench/bench_bound.py --work out/bench32 --res 32 --batch 8 --threads 1
Uses the S main and XS guide that scripts/bench/bench_generate.py writes into --work (made here when absent).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # this folder's modules
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from autoguide_py import edm2  # noqa: E402
import bench_generate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CL = torch.channels_last


def layer_shapes(net, batch):
    """Counter of the net's heavy operators at `batch`: ('conv', x, w, padding), ('linear', x, w) and
    ('attn', n, heads, channels per head, positions)."""
    ops = Counter()

    def mpconv(module, args, out):
        x, w = tuple(args[0].shape), tuple(module.weight.shape)
        ops[('linear', x, w) if len(w) == 2 else ('conv', x, w, module.padding)] += 1

    def block(module, args, out):
        if module.attn_qkv is not None:
            ops[('attn', out.shape[0], module.num_heads, out.shape[1] // module.num_heads,
                 out.shape[2] * out.shape[3])] += 1

    hooks = [m.register_forward_hook(mpconv) for m in net.modules() if isinstance(m, edm2.MPConv)]
    hooks += [m.register_forward_hook(block) for m in net.modules() if isinstance(m, edm2.Block)]
    args = edm2.example_inputs(batch, net.img_channels, net.img_resolution, net.label_dim)
    with torch.inference_mode():
        net.prepare()
        net(*args)
    for h in hooks:
        h.remove()
    return ops


def flops(op):
    kind = op[0]
    if kind == 'conv':
        _, x, w, _ = op
        return 2 * x[0] * x[2] * x[3] * w[0] * w[1] * w[2] * w[3]
    if kind == 'linear':
        _, x, w = op
        return 2 * x[0] * w[0] * w[1]
    _, n, h, c, q = op
    return 2 * 2 * n * h * c * q * q


def variants(op, dtype):
    """name -> a function computing `op` one way; 'exact' is the way the exported forward does it."""
    g = torch.Generator().manual_seed(0)
    kind = op[0]
    if kind == 'conv':
        _, x, w, pad = op
        x, w = torch.randn(x, generator=g).to(dtype), (torch.randn(w, generator=g) / 30).to(dtype)
        xc, wc = x.contiguous(memory_format=CL), w.contiguous(memory_format=CL)
        out = {'exact': lambda: F.conv2d(x, w, padding=pad), 'channels_last': lambda: F.conv2d(xc, wc, padding=pad)}
        if w.shape[2] == 1:
            w2, x3 = w.flatten(1), x.flatten(2)
            out['bmm'] = lambda: torch.bmm(w2.expand(x.shape[0], -1, -1), x3)
        return out
    if kind == 'linear':
        _, x, w = op
        x, w = torch.randn(x, generator=g), torch.randn(w, generator=g)  # the embedding path stays fp32
        return {'exact': lambda: x @ w.t()}
    _, n, h, c, q = op
    qkv = torch.randn(n, h, c, 3, q, generator=g).to(dtype)
    a, b, v = qkv.unbind(3)

    def einsum():
        w = torch.einsum('nhcq,nhck->nhqk', a, b / c ** 0.5).softmax(dim=3)
        return torch.einsum('nhqk,nhck->nhcq', w, v)

    def bmm():
        a2, b2, v2 = (t.reshape(n * h, c, q) for t in (a, b, v))
        w = torch.bmm(a2.transpose(1, 2), b2).mul_(c ** -0.5).softmax(2)
        return torch.bmm(v2, w.transpose(1, 2))
    return {'exact': einsum, 'bmm': bmm}


def time_it(fn, warmup, reps):
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def bound(ops, dtype, warmup, reps):
    """Per op: every variant's seconds; totals of the best variant and of the exact path's own kernels."""
    rows, best_total, exact_total = [], 0.0, 0.0
    for op, count in ops.items():
        times = {name: time_it(fn, warmup, reps) for name, fn in variants(op, dtype).items()}
        best = min(times, key=times.get)
        best_total += count * times[best]
        exact_total += count * times['exact']
        rows.append({'op': list(op), 'count': count, 'gflop': flops(op) / 1e9, 'seconds': times, 'best': best,
                     'best_gflops': flops(op) / times[best] / 1e9})
    return {'bound_s': best_total, 'exact_kernels_s': exact_total, 'ops': rows}


def profiled_kernel_time(pt, batch, dtype_code):
    """Seconds the exported forward spends in its convolutions and products (profiler self time, best of 3)."""
    torch._C._set_graph_executor_optimize(False)
    net = torch.jit.load(pt).eval()
    if dtype_code is not None:
        net.force_dtype = dtype_code
    net.prepare()
    args = edm2.example_inputs(batch, net.img_channels, net.img_resolution, net.label_dim)
    heavy = ('conv', 'mm', 'bmm', 'einsum', 'matmul')
    best = float('inf')
    with torch.inference_mode():
        net(*args)
        for _ in range(3):
            with torch.profiler.profile() as prof:
                net(*args)
            events = prof.key_averages()
            best = min(best, sum(e.self_cpu_time_total for e in events if any(h in e.key for h in heavy)) / 1e6)
    return best


def cli_seconds_per_eval(binary, pt, batch, threads, extra, repeats):
    """One evaluation of the net at `batch` as `autoguide generate` runs it: 2 Heun steps = 3 evaluations."""
    best = float('inf')
    for _ in range(repeats):
        out = os.path.join('/tmp', f'bench-bound-{os.getpid()}')
        subprocess.run([binary, 'generate', '--net', pt, '--seeds', f'0-{batch - 1}', '--batch', str(batch),
                        '--steps', '2', '--threads', str(threads), '--outdir', out, '--overwrite', '-q', *extra],
                       check=True)
        with open(os.path.join(out, 'manifest.json')) as f:
            best = min(best, json.load(f)['seconds'] / 3)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', default=os.path.join(ROOT, 'out', 'bench32'))
    ap.add_argument('--binary', default=os.path.join(ROOT, 'build', 'autoguide'))
    ap.add_argument('--res', type=int, default=32)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--dtypes', default='fp32', help='fp32,bf16 (bf16 is emulated, ~8x slower, without AVX512-BF16)')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=2, help='runs of each CLI mode (best kept)')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    paths = bench_generate.make_models(args.work, args.res, 3, 1000)
    result = {'threads': args.threads, 'batch': args.batch, 'res': args.res, 'nets': {}}
    for role, size in bench_generate.ROLES:
        ops = layer_shapes(bench_generate.random_net(size, args.res, 3, 1000, 0), args.batch)
        pt = paths[role][1]
        for name in args.dtypes.split(','):
            dtype, code, extra = {'fp32': (torch.float32, None, []),
                                  'bf16': (torch.bfloat16, 15, ['--dtype', 'bf16'])}[name]
            entry = bound(ops, dtype, args.warmup, args.reps)
            entry['profiled_exact_kernels_s'] = profiled_kernel_time(pt, args.batch, code)
            entry['exact_s'] = cli_seconds_per_eval(args.binary, pt, args.batch, args.threads, extra, args.repeats)
            entry['fast_s'] = cli_seconds_per_eval(args.binary, pt, args.batch, args.threads, extra + ['--fast'],
                                                   args.repeats)
            entry['fast_share_of_bound'] = entry['bound_s'] / entry['fast_s']
            entry['exact_share_of_bound'] = entry['bound_s'] / entry['exact_s']
            result['nets'][f'{size}-{name}'] = entry
            print(f"{size} {name}: bound {entry['bound_s']:.3f} s, exact {entry['exact_s']:.3f} s "
                  f"({100 * entry['exact_share_of_bound']:.0f}%), fast {entry['fast_s']:.3f} s "
                  f"({100 * entry['fast_share_of_bound']:.0f}%); exact path's kernels: harness "
                  f"{entry['exact_kernels_s']:.3f} s, profiler {entry['profiled_exact_kernels_s']:.3f} s",
                  file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
