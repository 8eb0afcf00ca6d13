#!/usr/bin/env python3
"""Measure the 2D toy example (autoguidance paper, Fig. 1) through autoguide's C++ sampler.

    /usr/bin/python3 scripts/experiments/toy/evaluate.py [--models models/toy] [--png docs/toy.png]

Samples 16,384 seeds of class A with `autoguide generate --npy` (EDM Heun, 32 steps, sigma_max 5) from
the main net without guidance, with CFG (guide trained on A and B without labels, w = 4) and with
autoguidance (smaller, briefly trained class-A guide, w = 3); scores them against the exact class-A
density (metrics.py); prints Markdown tables and draws the panels. Controls: true class-A samples, and
(unless --no-exact) the same Heun sampler driven by the exact ground-truth denoiser, i.e. what a perfect
net would give with this schedule and step count. Unless --no-sweep, also a few other guidance weights.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
import fractal  # noqa: E402
import plot  # noqa: E402
from metrics import ClassAReference  # noqa: E402

STEPS, SIGMA_MIN, SIGMA_MAX, RHO = 32, 0.002, 5.0, 7.0
SWEEP = (('auto', 1.5), ('auto', 2.0), ('cfg', 2.0), ('cfg', 3.0))


def default_bin():
    return os.environ.get('AUTOGUIDE_BIN') or os.path.join(ROOT, 'build', 'autoguide')


def cli_samples(binary, npy, net, n, gnet=None, guidance=None, class_idx=0, batch=4096):
    # One thread: these nets are tiny, and on a shared machine OpenMP's spinning threads cost ~10x.
    cmd = [binary, 'generate', '--net', net, '--class', str(class_idx), '--seeds', f'0-{n - 1}',
           '--steps', str(STEPS), '--sigma_max', str(SIGMA_MAX), '--npy', npy, '--batch', str(batch),
           '--quiet', '--overwrite', '--device', 'cpu', '--threads', '1']
    if gnet:
        cmd += ['--gnet', gnet, '--guidance', str(guidance)]
    subprocess.run(cmd, check=True)
    x = np.load(npy)
    if x.shape != (n, 2, 1, 1) or x.dtype != np.float32:
        raise RuntimeError(f'{npy}: expected float32 [{n},2,1,1], got {x.dtype} {list(x.shape)}')
    return x.reshape(n, 2)


def exact_heun(n):
    """The EDM Heun sampler with the exact class-A denoiser, from the same per-seed noise as the CLI."""
    gt = fractal.ground_truth('A', 'float32')
    noise = torch.stack([torch.randn([2], generator=torch.Generator().manual_seed(s)) for s in range(n)])
    i = torch.arange(STEPS, dtype=torch.float64)
    t = (SIGMA_MAX ** (1 / RHO) + i / (STEPS - 1) * (SIGMA_MIN ** (1 / RHO) - SIGMA_MAX ** (1 / RHO))) ** RHO
    t = torch.cat([t, torch.zeros(1, dtype=torch.float64)]).float()
    x = noise * t[0]
    for k in range(STEPS):
        d = (x - gt.denoise(x, t[k])) / t[k]
        x_next = x + (t[k + 1] - t[k]) * d
        if k < STEPS - 1:
            d2 = (x_next - gt.denoise(x_next, t[k + 1])) / t[k + 1]
            x_next = x + (t[k + 1] - t[k]) * (d + d2) / 2
        x = x_next
    return x.numpy()


def main_table(rows):
    out = ['| samples | mean log p_A | median log p_A | outliers | coverage (of 127) | outer-twig share |',
           '|---|---:|---:|---:|---:|---:|']
    for name, m in rows:
        out.append(f"| {name} | {m['mean_logp']:.2f} | {m['median_logp']:.2f} | {100 * m['outlier_share']:.2f}% "
                   f"| {m['coverage']} | {100 * m['outer_share']:.2f}% |")
    return '\n'.join(out)


def depth_table(rows):
    head = ' | '.join(f'depth {d} ({2 ** d})' for d in range(fractal.DEPTH))
    out = [f'| samples | {head} |', '|---|' + '---:|' * fractal.DEPTH]
    for name, m in rows:
        out.append(f'| {name} | ' + ' | '.join(str(c) for c in m['covered_by_depth']) + ' |')
    return '\n'.join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--models', default=os.path.join(ROOT, 'models', 'toy'))
    ap.add_argument('--bin', default=default_bin(), help='autoguide binary (default $AUTOGUIDE_BIN or build/autoguide)')
    ap.add_argument('--png', default=os.path.join(ROOT, 'docs', 'toy.png'))
    ap.add_argument('--json', help='also write all metrics here')
    ap.add_argument('-n', type=int, default=16384)
    ap.add_argument('--cfg-w', type=float, default=4.0)
    ap.add_argument('--auto-w', type=float, default=3.0)
    ap.add_argument('--no-exact', action='store_true', help='skip the exact-denoiser control')
    ap.add_argument('--no-sweep', action='store_true', help='skip the other guidance weights')
    args = ap.parse_args(argv)
    if not os.access(args.bin, os.X_OK):
        ap.error(f'{args.bin} is not an executable; build it with scripts/build.sh or set AUTOGUIDE_BIN')
    torch.set_num_threads(1)
    model = lambda name: os.path.join(args.models, name)
    guides = {'cfg': model('uncond.pt'), 'auto': model('guide.pt')}
    label = {'cfg': 'CFG', 'auto': 'autoguidance'}

    ref = ClassAReference(args.n)
    wanted = [('unguided', None, None), ('cfg', 'cfg', args.cfg_w), ('auto', 'auto', args.auto_w)]
    if not args.no_sweep:
        headline_w = {'cfg': args.cfg_w, 'auto': args.auto_w}
        wanted += [(f'{kind}@{w:g}', kind, w) for kind, w in SWEEP if w != headline_w[kind]]
    names = {'true': 'true class-A samples', 'exact': 'exact denoiser, same sampler (control)',
             'unguided': 'main net, no guidance'}
    points = {'true': ref.true_samples.numpy()}
    if not args.no_exact:
        start = time.time()
        points['exact'] = exact_heun(args.n)
        print(f'exact-denoiser control in {time.time() - start:.1f} s', file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        for key, kind, w in wanted:
            start = time.time()
            gnet = guides[kind] if kind else None
            points[key] = cli_samples(args.bin, os.path.join(tmp, 'x.npy'), model('main.pt'), args.n, gnet, w)
            if kind:
                names[key] = f'{label[kind]}, w = {w:g}'
            print(f'sampled {names[key]} in {time.time() - start:.1f} s', file=sys.stderr)
    metrics = {k: ref.evaluate(v) for k, v in points.items()}

    headline = [k for k in ('true', 'exact', 'unguided', 'cfg', 'auto') if k in points]
    print(main_table([(names[k], metrics[k]) for k in headline]))
    print(f'\nOutlier threshold (1st percentile of log p_A over the true samples): {ref.threshold:.3f}\n')
    print('Branches covered, by depth:\n')
    print(depth_table([(names[k], metrics[k]) for k in headline]))
    if not args.no_sweep:
        print('\nGuidance weights:\n')
        by_weight = lambda kind: sorted((w, k) for k, kk, w in wanted if kk == kind)
        order = ['unguided'] + [k for _, k in by_weight('cfg')] + [k for _, k in by_weight('auto')]
        print(main_table([(names[k], metrics[k]) for k in order]))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(threshold=ref.threshold, names=names, metrics=metrics), f, indent=1)

    def sub(k):
        m = metrics[k]
        return f"log p {m['mean_logp']:.2f} | outliers {100 * m['outlier_share']:.1f}% | branches {m['coverage']}"
    plot.figure([('Ground truth (class A)', points['true'], sub('true')),
                 ('No guidance', points['unguided'], sub('unguided')),
                 (f'CFG (w = {args.cfg_w:g})', points['cfg'], sub('cfg')),
                 (f'Autoguidance (w = {args.auto_w:g})', points['auto'], sub('auto'))], args.png)
    print(f'wrote {args.png}', file=sys.stderr)


if __name__ == '__main__':
    main()
