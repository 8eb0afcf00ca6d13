#!/usr/bin/env python3
"""Time an exported FD_DINOv2 detector (dinov2.pt from scripts/export_detectors.py): images/s per batch size.

The figure is the detector's forward on uint8 images as `autoguide ref` / `fid` call it (the same
TorchScript file, run by the same LibTorch): EDM2's resize to 224 and normalization, then ViT-L/14.
PNG decoding is not included. Weights' values do not change the time, so a file exported from random
weights (scripts/dev/check_real_dinov2.sh --work DIR leaves one in DIR/out/) measures the real cost.

  scripts/bench/bench_dinov2.py DETECTOR.pt [--batches 8,16,32] [--repeats 2] [--size 512] [--threads N]
      [--autoguide build/autoguide --ref-images 64]

With --autoguide, also the wall time of `autoguide ref` on that many PNGs (file loading included).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # scripts/: autoguide_py
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import torch  # noqa: E402

FULL_SET = 50_000  # images in an FD evaluation (EDM2's default)


def images(batch, size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, [batch, 3, size, size], generator=gen, dtype=torch.uint8)


def time_batches(detector, batch, size, repeats):
    """Seconds per image over `repeats` calls, after one warm-up call of the same shape."""
    x = images(batch, size)
    with torch.no_grad():
        detector(x)
        start = time.perf_counter()
        for _ in range(repeats):
            detector(x)
    return (time.perf_counter() - start) / (repeats * batch)


def time_autoguide_ref(binary, detector, count, size, batch, threads):
    from PIL import Image
    with tempfile.TemporaryDirectory(prefix='bench-dinov2-') as tmp:
        for i, img in enumerate(images(count, size, seed=1)):
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(os.path.join(tmp, f'{i:06d}.png'))
        cmd = [binary, 'ref', '--detector', detector, '--images', tmp, '--out', os.path.join(tmp, 'stats.npz'),
               '--batch', str(batch), '--device', 'cpu', '--threads', str(threads), '-q']
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('detector', help='dinov2.pt written by scripts/export_detectors.py')
    parser.add_argument('--batches', default='8,16,32', help='comma-separated batch sizes (default: %(default)s)')
    parser.add_argument('--repeats', type=int, default=2, help='timed calls per batch size (default: %(default)s)')
    parser.add_argument('--size', type=int, default=512, help='input images are SIZE x SIZE RGB (default: %(default)s)')
    parser.add_argument('--threads', type=int, default=os.cpu_count(), help='torch threads (default: all cores)')
    parser.add_argument('--autoguide', metavar='BIN', help='also time BIN ref on --ref-images PNGs')
    parser.add_argument('--ref-images', type=int, default=64, help='PNGs for --autoguide (default: %(default)s)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = torch.jit.load(args.detector, map_location='cpu').eval()
    print(f'torch {torch.__version__}, {args.threads} threads, {args.size}x{args.size} RGB uint8 inputs, fp32')
    print('| batch | s/image | images/s | 50,000 images |')
    print('|---|---|---|---|')
    for batch in [int(b) for b in args.batches.split(',')]:
        per_image = time_batches(detector, batch, args.size, args.repeats)
        print(f'| {batch} | {per_image:.3f} | {1 / per_image:.2f} | {FULL_SET * per_image / 3600:.1f} h |', flush=True)
    if args.autoguide:
        batch = int(args.batches.split(',')[-1])
        seconds = time_autoguide_ref(args.autoguide, args.detector, args.ref_images, args.size, batch, args.threads)
        print(f'autoguide ref, {args.ref_images} PNGs, --batch {batch}: {seconds:.1f} s wall '
              f'({args.ref_images / seconds:.2f} images/s, file loading included)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
