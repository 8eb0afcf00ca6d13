#!/usr/bin/env python3
"""Time the SD VAE decode inside `autoguide generate`: one 64x64 latent -> one 512x512 image, per precision.

The decoder is the full stabilityai/sd-vae-ft-mse architecture with random weights (the time does not
depend on the values), exported by our own exporter; the main net is a tiny EDM2 net on 64x64 latents
sampled with two steps, so the run is dominated by the decode. The time is the one generate measures
around decode_latents (manifest.json `vae_decode_seconds`), divided by the number of images.

  scripts/bench/bench_vae.py [--images 2] [--dtypes fp32,bf16] [--threads N] [--work DIR]
"""
import argparse
import json
import os
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


def make_models(work):
    vae_path, net_path = os.path.join(work, 'bench-sd-vae.pt'), os.path.join(work, 'bench-latent64.pt')
    if not os.path.exists(vae_path):
        torch.manual_seed(0)
        vae.export_vae(vae.VaeDecoder(), vae_path, {'source_file': 'random weights'})
    if not os.path.exists(net_path):
        torch.manual_seed(1)
        net = edm2.Precond(img_resolution=64, img_channels=4, label_dim=0, model_channels=16, channel_mult=[1, 2],
                           num_blocks=1, attn_resolutions=[])
        scale = np.float32(0.5) / np.float32([4.17, 4.62, 3.71, 3.28])
        bias = np.float32(0) - np.float32([5.81, 3.25, 0.12, -2.15]) * scale
        export_precond(net, net_path, {'encoder': {'type': 'vae', 'scale': [float(v) for v in scale],
                                                   'bias': [float(v) for v in bias]}})
    return vae_path, net_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=2)
    parser.add_argument('--dtypes', default='fp32,bf16')
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--vae-batch', type=int, default=1)
    parser.add_argument('--work', default=None, help='folder for the generated models (kept for reruns)')
    parser.add_argument('--bin', default=os.path.join(ROOT, 'build', 'autoguide'))
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix='bench_vae_')
    os.makedirs(work, exist_ok=True)
    vae_path, net_path = make_models(work)
    print(f'threads {args.threads}, {args.images} images, vae batch {args.vae_batch}, 64x64 latents -> 512x512')
    for dtype in args.dtypes.split(','):
        out = os.path.join(work, f'out-{dtype}')
        subprocess.run([args.bin, 'generate', '--net', net_path, '--vae', vae_path, '--vae-dtype', dtype,
                        '--vae-batch', str(args.vae_batch), '--seeds', f'0-{args.images - 1}', '--steps', '2',
                        '--outdir', out, '--overwrite', '--threads', str(args.threads), '--device', 'cpu',
                        '--quiet'], check=True)
        with open(os.path.join(out, 'manifest.json')) as f:
            manifest = json.load(f)
        per_image = manifest['vae_decode_seconds'] / args.images
        print(f'{dtype}: {per_image:.2f} s per image (generate total {manifest["seconds"]:.2f} s)')


if __name__ == '__main__':
    main()
