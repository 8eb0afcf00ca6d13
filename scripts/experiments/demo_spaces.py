#!/usr/bin/env python3
"""The demo experiment in two feature spaces: FD (with a bootstrap interval), precision and recall, and pixel
statistics for autoguidance and CFG over a grid of guidance weights, against the Fashion-MNIST training set.

Samples come from `autoguide sweep`, one run per setting (the experiment's settings: 12 Heun steps; bf16
where the CPU computes it natively, else fp32), so an interrupted experiment resumes where it stopped and
--jobs runs settings side by side (one thread each, which uses 2 cores better than one run on 2 threads); features from `autoguide ref --features-out` with each detector; precision/recall (k=3) from
`autoguide fid --pr` against 5,000 training images; the FD interval from autoguide_py.fd_bootstrap.

  scripts/experiments/demo_spaces.py --num 2000 --curve ag=models/demo/guide.pt:1.1,1.2,1.3 \\
      --curve cfg=models/demo/uncond.pt:1.5,2 --out out/demo-spaces
Settings whose sweep finished (results.json present) are not sampled again; results.json and a markdown
table go to --out.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # this folder's modules
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from autoguide_py import fmnist  # noqa: E402
from autoguide_py.fd_bootstrap import bootstrap_fd, bootstrap_fd_difference  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPACES = {  # name: (detector, training-set statistics)
    'classifier': ('models/demo/detector.pt', 'models/demo/fmnist-train-stats.npz'),
    'encoder': ('models/demo/encoder.pt', 'models/demo/fmnist-train-stats-encoder.npz'),
}
BRIGHT = 200  # a pixel above this counts as saturated (Fashion-MNIST's garments are mostly below)


def run(args, *cmd):
    subprocess.run([args.bin, *map(str, cmd)], check=True, cwd=ROOT)


def sample_point(args, name, guide, w):
    """One setting: its own sweep folder (w = 1 is the same unguided images whatever the guide)."""
    out = os.path.join(args.out, 'none' if float(w) == 1 else os.path.join(name, f'w{float(w):.2f}'))
    if not os.path.exists(os.path.join(out, 'results.json')):
        run(args, 'sweep', '--net', args.net, '--gnet', guide, '--guidance', w, '--seeds', f'0-{args.num - 1}',
            '--steps', args.steps, '--dtype', args.dtype, '--batch', 64, '--threads', args.threads, '--outdir', out,
            '--overwrite', '-q', *(['--fast'] if args.fast else []))
    with open(os.path.join(out, 'results.json')) as f:
        return [dict(s, curve=name, path=os.path.join(out, s['folder'])) for s in json.load(f)['settings']]


def sample(args, curves):
    """Every (curve, w) point, --jobs at a time; the settings in the order the curves list them."""
    points = [(name, guide, w) for name, guide, weights in curves for w in weights.split(',')]
    unguided = [p for p in points if float(p[2]) == 1][:1]  # sampled once, shared by every curve
    points = unguided + [p for p in points if float(p[2]) != 1]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        return [s for settings in pool.map(lambda p: sample_point(args, *p), points) for s in settings]


def pixel_stats(images):
    """uint8 [N, ...]: mean, standard deviation, and the share of pixels above BRIGHT, in percent."""
    x = images.astype(np.float64)
    return {'pixel_mean': x.mean(), 'pixel_std': x.std(), 'bright_pct': 100 * (images > BRIGHT).mean()}


def folder_images(path):
    files = sorted(f for f in os.listdir(path) if f.endswith('.png'))
    return np.stack([np.asarray(Image.open(os.path.join(path, f))) for f in files])


def reference_features(args, space, detector):
    """Features of the whole training set (for precision/recall, a fixed subset of 5,000)."""
    feats = os.path.join(args.out, f'train-{space}.npy')
    subset = os.path.join(args.out, f'train-{space}-5000.npy')
    if not os.path.exists(subset):
        npy = os.path.join(args.out, 'train-images.npy')
        if not os.path.exists(npy):
            np.save(npy, fmnist.load('train')[0].numpy())
        run(args, 'ref', '--detector', detector, '--images', npy, '--out', feats + '.npz', '--features-out', feats,
            '--overwrite', '-q')
        all_feats = np.load(feats)
        idx = np.random.default_rng(0).choice(len(all_feats), 5000, replace=False)
        np.save(subset, all_feats[np.sort(idx)])
    return subset


def measure(args, images_path, space, detector, stats, ref_subset):
    """FD with its bootstrap interval, precision and recall of one image set in one space (kept beside the
    features, so a rerun with more settings measures only the new ones)."""
    feats = features_path(images_path, space)
    done = feats[:-len('.npy')] + f'.measured-{args.resamples}.json'
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    if not os.path.exists(feats):
        run(args, 'ref', '--detector', detector, '--images', images_path, '--out', feats + '.npz', '--features-out',
            feats, '--overwrite', '-q')
    ref = np.load(os.path.join(ROOT, stats))
    fd, low, high = bootstrap_fd(np.load(feats), ref['mu'], ref['sigma'], resamples=args.resamples)
    r = subprocess.run([args.bin, 'fid', '--detector', detector, '--images', images_path, '--ref', stats,
                        '--ref-images', ref_subset, '--pr', '--json', '-q'], check=True, capture_output=True,
                       text=True, cwd=ROOT)
    pr = json.loads(r.stdout)
    result = {'fd': fd, 'fd_low': low, 'fd_high': high, 'precision': pr['precision'], 'recall': pr['recall'],
              'fd_cli': pr['fd']}
    with open(done, 'w') as f:
        json.dump(result, f)
    return result


def features_path(folder, space):
    return folder.rstrip('/') + f'.{space}.npy'


def optima(rows):
    """Per feature space: the setting of lowest FD on each curve (unguided included in every curve)."""
    best = {}
    for space in SPACES:
        for curve in sorted({r['curve'] for r in rows if r['mode'] not in ('none', 'real')}):
            mine = [r for r in rows if r['curve'] == curve or r['mode'] == 'none']
            best[(space, curve)] = min(mine, key=lambda r: r[space]['fd'])
    return best


def comparisons(args, rows):
    """Paired bootstrap intervals (same seeds) of FD differences, in each space, between every setting some
    space chose (each curve's optimum per space), no guidance, and each other: the claims of
    docs/experiments.md, including how one space's choice fares in the other."""
    best = optima(rows)
    none = next(r for r in rows if r['mode'] == 'none')
    chosen = []
    for r in best.values():
        if r is not none and all(r is not c for c in chosen):
            chosen.append(r)
    pairs = [(c, none) for c in chosen]
    pairs += [(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1:]]
    out = []
    for space, (_, stats) in SPACES.items():
        ref = np.load(os.path.join(ROOT, stats))
        for a, b in pairs:
            diff, low, high = bootstrap_fd_difference(np.load(features_path(a['folder'], space)),
                                                      np.load(features_path(b['folder'], space)), ref['mu'],
                                                      ref['sigma'], resamples=args.resamples)
            out.append({'space': space, 'a': a['label'], 'b': b['label'], 'fd_a_minus_b': diff, 'low': low,
                        'high': high})
    return out


def comparison_table(items):
    lines = ['| space | A | B | FD(A) - FD(B) [95% CI, paired] |', '|---|---|---|---|']
    lines += [f"| {c['space']} | {c['a']} | {c['b']} | {c['fd_a_minus_b']:.2f} [{c['low']:.2f}, {c['high']:.2f}] |"
              for c in items]
    return '\n'.join(lines)


def real_images(args):
    """args.num test-split images as a folder of PNGs: the FD floor of a perfect generator at this N."""
    folder = os.path.join(args.out, 'real-test')
    if not os.path.isdir(folder):
        os.makedirs(folder)
        images = fmnist.load('test')[0].numpy()[:args.num]
        for i, im in enumerate(images):
            Image.fromarray(im[0]).save(os.path.join(folder, f'{i:06d}.png'))
    return folder


def table(rows):
    head = '| setting | w | ' + ' | '.join(f'FD {s} [95% CI] | P / R {s}' for s in SPACES) + \
           ' | pixel std | % > 200 |'
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in rows:
        cells = [f"{r[s]['fd']:.2f} [{r[s]['fd_low']:.2f}, {r[s]['fd_high']:.2f}] | "
                 f"{r[s]['precision']:.3f} / {r[s]['recall']:.3f}" for s in SPACES]
        w = '' if r['w'] is None else f"{r['w']:.2f}"
        lines.append(f"| {r['label']} | {w} | " + ' | '.join(cells) +
                     f" | {r['pixel_std']:.1f} | {r['bright_pct']:.1f} |")
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--curve', action='append', required=True, metavar='NAME=GUIDE.pt:W1,W2,...')
    ap.add_argument('--net', default='models/demo/main.pt')
    ap.add_argument('--num', type=int, default=2000)
    ap.add_argument('--steps', type=int, default=12)
    ap.add_argument('--dtype', default='fp32', help='bf16 only where the CPU has AVX512-BF16 or AMX')
    ap.add_argument('--threads', type=int, default=1, help='per sampling run')
    ap.add_argument('--jobs', type=int, default=2, help='sampling runs side by side')
    ap.add_argument('--sample-only', action='store_true', help='sample the settings, measure later')
    ap.add_argument('--fast', action='store_true', help="sample with autoguide's --fast path")
    ap.add_argument('--resamples', type=int, default=200)
    ap.add_argument('--out', default='out/demo-spaces')
    ap.add_argument('--bin', default=os.path.join(ROOT, 'build', 'autoguide'))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    curves = []
    for spec in args.curve:
        name, _, rest = spec.partition('=')
        guide, _, weights = rest.rpartition(':')
        curves.append((name, guide, weights))
    settings, seen = [], set()
    for s in sample(args, curves):
        if s['path'] not in seen:  # w = 1 is the same unguided folder in every curve
            seen.add(s['path'])
            settings.append(s)
    if args.sample_only:
        return
    rows = []
    refs = {space: reference_features(args, space, det) for space, (det, _) in SPACES.items()}
    real = real_images(args)
    for s in settings + [{'label': f'real test images ({args.num})', 'w': None, 'path': real, 'mode': 'real'}]:
        row = {'label': s['label'] if s['mode'] != 'none' else 'no guidance', 'w': s['w'], 'mode': s['mode'],
               'curve': s.get('curve'), 'folder': s['path']}
        row.update(pixel_stats(folder_images(s['path'])))
        for space, (det, stats) in SPACES.items():
            row[space] = measure(args, s['path'], space, det, stats, refs[space])
        rows.append(row)
        print(json.dumps(row), flush=True)
    pairs = comparisons(args, [r for r in rows if r['mode'] != 'real'])
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump({'settings': rows, 'comparisons': pairs}, f, indent=1)
    with open(os.path.join(args.out, 'table.md'), 'w') as f:
        f.write(table(rows) + '\n\n' + comparison_table(pairs) + '\n')
    print(table(rows) + '\n\n' + comparison_table(pairs))


if __name__ == '__main__':
    main()
