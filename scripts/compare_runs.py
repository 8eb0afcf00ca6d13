#!/usr/bin/env python3
"""Two image folders sampled on the same seeds (e.g. exact and --fast, fp32 and bf16): the FD of each in both
demo feature spaces, the paired bootstrap interval of their difference, and the largest pixel difference.

  scripts/compare_runs.py out/ds500/ag/w1.60/guide-w1.60 out/fast500/ag/guide-w1.60
Features come from `autoguide ref --features-out` and are kept beside each folder (as demo_spaces.py keeps
them), so a folder that demo_spaces.py measured is not measured again.
"""
import argparse
import json
import os
import sys

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # autoguide_py
                os.path.join(os.path.dirname(os.path.abspath(__file__)), 'experiments')]  # demo_spaces
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import numpy as np  # noqa: E402

from autoguide_py.fd_bootstrap import bootstrap_fd, bootstrap_fd_difference  # noqa: E402
from demo_spaces import ROOT, SPACES, features_path, folder_images, run  # noqa: E402


def features(args, folder, space, detector):
    path = features_path(folder, space)
    if not os.path.exists(path):
        run(args, 'ref', '--detector', detector, '--images', folder, '--out', path + '.npz', '--features-out', path,
            '--overwrite', '-q')
    return np.load(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('a')
    ap.add_argument('b')
    ap.add_argument('--resamples', type=int, default=200)
    ap.add_argument('--bin', default=os.path.join(ROOT, 'build', 'autoguide'))
    args = ap.parse_args()
    images_a, images_b = folder_images(args.a), folder_images(args.b)
    if images_a.shape != images_b.shape:
        raise SystemExit(f'error: {args.a} and {args.b} hold different image sets ({images_a.shape} vs '
                         f'{images_b.shape}); sample both on the same seeds')
    diff = np.abs(images_a.astype(np.int16) - images_b.astype(np.int16))
    result = {'images': len(images_a), 'max_pixel_difference': int(diff.max()),
              'pixels_differing_pct': 100 * float((diff > 0).mean())}
    for space, (detector, stats) in SPACES.items():
        ref = np.load(os.path.join(ROOT, stats))
        fa, fb = features(args, args.a, space, detector), features(args, args.b, space, detector)
        fd_a = bootstrap_fd(fa, ref['mu'], ref['sigma'], resamples=args.resamples)
        fd_b = bootstrap_fd(fb, ref['mu'], ref['sigma'], resamples=args.resamples)
        d = bootstrap_fd_difference(fa, fb, ref['mu'], ref['sigma'], resamples=args.resamples)
        result[space] = {'fd_a': fd_a, 'fd_b': fd_b, 'fd_a_minus_b': d}
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
