#!/usr/bin/env python3
"""Time `autoguide compare` at ImageNet-512 size: seconds per row (sampling and VAE decoding) for no guidance,
CFG and autoguidance on the same seeds.

The nets have EDM2's ImageNet-512 architectures with random weights (the time does not depend on the values):
an S main net, an XS guide and an XS unconditional net on 64x64x4 latents with 1000 classes, and the full
stabilityai/sd-vae-ft-mse decoder layout, all exported by our own exporters.

  scripts/bench/bench_compare.py [--seeds 0-1] [--dtype bf16] [--vae-dtype fp32] [--steps 32] [--threads N] [--work DIR]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # this folder's modules
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from autoguide_py import edm2, vae  # noqa: E402
from autoguide_py.export import export_precond  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# EDM2's StabilityVAEEncoder constants: latents become (z - bias) / scale before the VAE.
SCALE = np.float32(0.5) / np.float32([4.17, 4.62, 3.71, 3.28])
BIAS = np.float32(0) - np.float32([5.81, 3.25, 0.12, -2.15]) * SCALE
NETS = {'main': ('s', 1000, 1), 'guide': ('xs', 1000, 2), 'uncond': ('xs', 0, 3)}  # size, label_dim, seed


def make_models(work):
    paths = {role: os.path.join(work, f'img512-{size}-{role}.pt') for role, (size, _, _) in NETS.items()}
    for role, (size, label_dim, seed) in NETS.items():
        if os.path.exists(paths[role]):
            continue
        torch.manual_seed(seed)
        net = edm2.Precond(img_resolution=64, img_channels=4, label_dim=label_dim, model_channels=edm2.SIZES[size])
        with torch.no_grad():  # EDM2 starts its gains at 0, which would skip most of the U-Net
            for name, p in net.named_parameters():
                if name.endswith('gain'):
                    p.uniform_(0.5, 1.5)
        export_precond(net, paths[role], {'encoder': {'type': 'vae', 'scale': [float(v) for v in SCALE],
                                                      'bias': [float(v) for v in BIAS]}})
    paths['vae'] = os.path.join(work, 'sd-vae-random.pt')
    if not os.path.exists(paths['vae']):
        torch.manual_seed(0)
        vae.export_vae(vae.VaeDecoder(), paths['vae'], {'source_file': 'random weights'})
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', default='0-1')
    ap.add_argument('--dtype', default='bf16')
    ap.add_argument('--vae-dtype', default='fp32')
    ap.add_argument('--steps', type=int, default=32)
    ap.add_argument('--threads', type=int, default=os.cpu_count())
    ap.add_argument('--work', default=None, help='folder for the generated models (kept for reruns)')
    ap.add_argument('--bin', default=os.path.join(ROOT, 'build', 'autoguide'))
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix='bench_compare_')
    os.makedirs(work, exist_ok=True)
    p = make_models(work)
    cmd = [args.bin, 'compare', '--net', p['main'], '--gnet', p['guide'], '--ag', '2.1', '--uncond', p['uncond'],
           '--cfg', '1.4', '--vae', p['vae'], '--vae-dtype', args.vae_dtype, '--dtype', args.dtype,
           '--seeds', args.seeds, '--steps', str(args.steps), '--threads', str(args.threads), '--device', 'cpu',
           '--out', os.path.join(work, 'compare.png'), '--overwrite']
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr)
    print(f'S main, XS guide, XS uncond at 64x64x4 -> 512x512, seeds {args.seeds}, {args.steps} steps, nets '
          f'{args.dtype}, VAE {args.vae_dtype}, {args.threads} threads')
    for line in r.stderr.splitlines():
        m = re.match(r'autoguide: (.*) \((\w+)\): (\d+) images in ([\d.]+) s', line)
        if m:
            print(f'{m.group(1):24s} {float(m.group(4)):8.1f} s per row, {float(m.group(4)) / int(m.group(3)):7.1f} s per image')


if __name__ == '__main__':
    main()
