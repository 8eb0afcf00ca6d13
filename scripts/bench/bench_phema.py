#!/usr/bin/env python3
"""Post-hoc EMA at load: peak memory and seconds per new EMA length, resident and streamed, end to end.

Drives `autoguide sweep --net MAIN --gnet SET --gnet-ema L1..Ln --guidance 1 --seeds 0 --steps 2`. At w = 1 the
guide is never evaluated, but each of its lengths is still built just before its rows and released after
them (NetCache), so a run's time grows by one build per length: the slope between 1 and n lengths is the
seconds per new length. Each run's peak RSS comes from wait4. `--ema-memory 1` streams the set (every length
built in one pass over the file); the default keeps it resident.

The second way to the same cost: the build is, per snapshot and parameter, `acc += w.float() * c` in float32
(phema.cpp, as NVIDIA's reconstruct_phema.py does). That multiply-add is timed alone here over one tensor of a
whole snapshot's elements, from fp32 and from fp16 weights, with torch on the same threads.

From the per-element costs follows the estimate for NVIDIA's published raw snapshot sets (fp16):
  XS: 64 snapshots x 238 MiB (124.8M parameters each, 14.9 GiB); S: about twice (64 x 476 MiB).

Each figure: one warm-up run, then the median of --reps runs. Prints the CPU (lscpu) with the figures.

With --grow N the set is first made N times longer (scaled_set): the demo set's snapshots repeated at later
training lengths with small perturbations, so that its weights dominate the process's memory and the
resident and streamed peaks can be told apart.

  scripts/bench/bench_phema.py [--set models/demo/guide-set.pt] [--main models/demo/main.pt] [--lengths 8]
                               [--reps 3] [--threads 1] [--grow N] [--json OUT.json]
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

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get('AUTOGUIDE_BIN', os.path.join(ROOT, 'build', 'autoguide'))
XS_PARAMS, XS_SNAPSHOTS = 238 * 2**20 // 2, 64  # fp16 raw snapshots: 2 bytes a parameter


def cpu_name():
    out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    name = next((line.split(':', 1)[1].strip() for line in out.splitlines() if line.startswith('Model name')), '?')
    flags = [f for f in ('avx512f', 'avx512_bf16', 'amx_bf16') if f' {f}' in out]
    return f"{name} ({', '.join(flags) or 'AVX2 only'}), {os.cpu_count()} CPUs"


def run_measured(args):
    """Seconds and peak RSS (MiB) of one autoguide run. The peak is /usr/bin/time's: a child forked from this
    process (torch imported, some 250 MiB) would report this process's RSS as its own peak (Linux keeps the
    high-water mark across exec)."""
    with tempfile.NamedTemporaryFile('r') as rss:
        t = time.perf_counter()
        r = subprocess.run(['/usr/bin/time', '-f', '%M', '-o', rss.name, BIN, *map(str, args)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - t
        if r.returncode != 0:
            sys.exit(f'bench_phema: {" ".join(map(str, args))} failed: {r.stderr}')
        return seconds, int(rss.read().split()[-1]) / 1024


def median_run(args, reps):
    run_measured(args)  # warm-up: page cache, lazy library loading
    runs = [run_measured(args) for _ in range(reps)]
    return statistics.median(s for s, _ in runs), max(m for _, m in runs)


def lengths(n):
    """n EMA lengths spread over the range a set represents."""
    return [round(0.05 + 0.15 * k / max(n - 1, 1), 4) for k in range(n)]


def set_tensors(path):
    """Each snapshot's parameters (the build's inputs, by name) and the set's facts."""
    m = torch.jit.load(path, map_location='cpu')
    names = [n for n, _ in m.net.named_parameters()]
    snaps = [{n: s[n] for n in names} for s in m.snapshots]
    return snaps, sum(snaps[0][n].numel() for n in names), snaps[0][names[0]].dtype


def build_loop_seconds(snaps, reps):
    """The build's arithmetic alone: per snapshot and parameter acc += w.float() * c, in torch."""
    times = []
    for k in range(reps + 1):
        acc = {n: torch.zeros(t.shape) for n, t in snaps[0].items()}
        t = time.perf_counter()
        for s in snaps:
            for n, w in s.items():
                acc[n] += w.to(torch.float32) * 0.0625
        if k:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def scaled_set(path, times, out):
    """The set at `path` with its snapshots repeated `times` times at later training lengths (each copy
    perturbed, so that no two share bytes), written to `out`: a larger set of the same network."""
    files = {'autoguide.json': ''}
    m = torch.jit.load(path, map_location='cpu', _extra_files=files)
    meta = json.loads(files['autoguide.json'])
    last = meta['snapshots'][-1]['nimg']
    snaps, listed = [], []
    gen = torch.Generator().manual_seed(0)
    for r in range(times):
        for s, entry in zip(m.snapshots, meta['snapshots']):
            snaps.append({n: t + 1e-3 * torch.randn(t.shape, generator=gen).to(t.dtype) if r else t.clone()
                          for n, t in s.items()})
            listed.append(dict(entry, nimg=entry['nimg'] + r * last))
    m.snapshots = snaps
    meta['snapshots'] = listed
    meta['training_kimg'] = listed[-1]['nimg'] // 1000
    torch.jit.save(m, out, _extra_files={'autoguide.json': json.dumps(meta)})
    return out


def xs_like_snapshots(dtype, count=2, tensor=2**20):
    """`count` snapshots of an XS raw snapshot's size (124.8M parameters) in tensors of `tensor` elements."""
    n = XS_PARAMS // tensor
    return [{str(i): torch.randn(tensor).to(dtype) for i in range(n)} for _ in range(count)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--set', default=os.path.join(ROOT, 'models', 'demo', 'guide-set.pt'))
    ap.add_argument('--main', default=os.path.join(ROOT, 'models', 'demo', 'main.pt'))
    ap.add_argument('--lengths', type=int, default=8)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--grow', type=int, default=1, help='measure a set this many times longer (scaled_set)')
    ap.add_argument('--json', default=None, help='also write the figures here')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    grown = tempfile.TemporaryDirectory()
    if args.grow > 1:
        args.set = scaled_set(args.set, args.grow, os.path.join(grown.name, 'grown-set.pt'))

    snaps, elements, dtype = set_tensors(args.set)
    count = len(snaps)
    set_mib = os.path.getsize(args.set) / 2**20
    print(f'CPU: {cpu_name()}; {args.threads} thread(s)')
    print(f'set: {args.set}: {set_mib:.1f} MiB, {count} snapshots x {elements / 1e6:.3f}M parameters ({dtype})')

    out = {'cpu': cpu_name(), 'threads': args.threads, 'set_mib': set_mib, 'snapshots': count,
           'parameters': elements, 'dtype': str(dtype), 'runs': {}}
    with tempfile.TemporaryDirectory() as work:
        def sweep(n, extra):
            return ['sweep', '--net', args.main, '--gnet', args.set, '--gnet-ema', ','.join(map(str, lengths(n))),
                    '--guidance', '1', '--seeds', '0', '--steps', '2', '--threads', args.threads, '--quiet',
                    '--overwrite', '--out', os.path.join(work, 'out'), *extra]

        base_s, base_mib = median_run(['generate', '--net', args.main, '--seeds', '0', '--steps', '2', '--threads',
                                       args.threads, '--quiet', '--overwrite', '--out', os.path.join(work, 'g')],
                                      args.reps)
        print(f'baseline (generate, main net only): {base_s:.3f} s, peak RSS {base_mib:.0f} MiB')
        out['baseline'] = {'seconds': base_s, 'peak_mib': base_mib}
        for mode, extra in (('resident', []), ('streamed', ['--ema-memory', '1'])):
            one_s, one_mib = median_run(sweep(1, extra), args.reps)
            many_s, many_mib = median_run(sweep(args.lengths, extra), args.reps)
            per = (many_s - one_s) / (args.lengths - 1)
            print(f'{mode}: 1 length {one_s:.3f} s, peak {one_mib:.0f} MiB; {args.lengths} lengths {many_s:.3f} s, '
                  f'peak {many_mib:.0f} MiB; per new length {per * 1e3:.1f} ms '
                  f'({per / (count * elements) * 1e9:.2f} ns per snapshot parameter)')
            out['runs'][mode] = {'one': {'seconds': one_s, 'peak_mib': one_mib},
                                 'many': {'lengths': args.lengths, 'seconds': many_s, 'peak_mib': many_mib},
                                 'seconds_per_length': per, 'ns_per_snapshot_parameter': per / (count * elements) * 1e9}

    # The same arithmetic alone, over the demo set's own tensors and over snapshots of an XS snapshot's size.
    per = {'demo': build_loop_seconds(snaps, args.reps) / (count * elements) * 1e9}
    print(f'multiply-add loop over the demo set ({count} x {elements / 1e6:.3f}M {dtype}): {per["demo"]:.2f} ns a '
          f'snapshot parameter')
    for dt in (torch.float16, torch.float32):
        xs = xs_like_snapshots(dt)
        per[str(dt)[6:]] = build_loop_seconds(xs, args.reps) / (len(xs) * XS_PARAMS) * 1e9
        print(f'multiply-add loop over 2 XS-sized {dt} snapshots (1M-element tensors): {per[str(dt)[6:]]:.2f} ns a '
              f'snapshot parameter')
        del xs
    out['multiply_add_ns_per_parameter'] = per

    # XS and S at their last training length: a length is the sum over all 64 snapshots.
    for name, factor in (('XS', 1), ('S', 2)):
        params = XS_PARAMS * factor
        total = params * XS_SNAPSHOTS
        a = total * out['runs']['resident']['ns_per_snapshot_parameter'] / 1e9
        b = total * per['float16'] / 1e9
        mib = params * 2 / 2**20
        print(f'{name}: {XS_SNAPSHOTS} x {mib:.0f} MiB fp16: per new length ~{a:.0f} s at the demo build\'s cost a '
              f'parameter, ~{b:.0f} s at the XS-sized loop\'s; resident {XS_SNAPSHOTS * mib / 1024:.1f} GiB of snapshots; '
              f'streamed {mib / 1024:.2f} GiB (one snapshot) + {params * 4 / 2**30:.2f} GiB per length built in the pass')
        out[name] = {'seconds_per_length_demo_rate': a, 'seconds_per_length_xs_loop': b,
                     'resident_gib': XS_SNAPSHOTS * mib / 1024, 'snapshot_gib': mib / 1024,
                     'sum_gib_per_length': params * 4 / 2**30}
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)


if __name__ == '__main__':
    main()
