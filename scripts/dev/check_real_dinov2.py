#!/usr/bin/env python3
"""Developer check: export the REAL facebookresearch/dinov2 ViT-L/14 (random weights) and compare it with
the repository's own forward under EDM2's DINOv2Detector preprocessing.

    scripts/dev/check_real_dinov2.sh DINOV2_SRC [--work DIR] [--autoguide build/autoguide]

DINOV2_SRC is a local clone of https://github.com/facebookresearch/dinov2. CI cannot fetch it, so CI
runs the stand-in tests (tests/python/test_export_detectors.py); this script is the same comparison
on the real code. Steps:

1. Build dinov2_vitl14 from the clone with random weights (qkv drawn with std 1/√dim so attention is
   far from uniform and a wrong attention would show), save them as a weights file.
2. Run scripts/export_detectors.py --which dinov2 --dinov2-repo DINOV2_SRC --dinov2-weights FILE.
3. Features of the written file against the repository's forward (on torch without
   F.scaled_dot_product_attention, an einsum implementation written here supplies it; on torch >= 2 the
   real op runs) after EDM2's preprocessing, also written here: colour and grey images, two batch sizes.
4. With --autoguide: `autoguide ref --features-out` on the colour images as PNGs against the same reference,
   and `autoguide fid` of the grey PNGs against those statistics against numpy's FD of the reference features.

Prints one line per comparison; exit status 0 when every relative error is <= 1e-5, 1 otherwise.
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOLERANCE = 1e-5  # relative: max |got - want| / max |want|
MODEL = 'dinov2_vitl14'


# ----------------------------------------------------------------------------
# The reference, written here independently of scripts/autoguide_py.


def einsum_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """softmax(q·k / √d) v per head, for the repository's eval-mode call (no mask, no dropout)."""
    assert attn_mask is None and not dropout_p and not is_causal
    d = q.shape[-1]
    weights = torch.einsum('bhid,bhjd->bhij', q, k).div(math.sqrt(d) if scale is None else 1 / scale)
    return torch.einsum('bhij,bhjd->bhid', weights.softmax(-1), v)


def edm2_preprocess(images):
    """EDM2 calculate_metrics.py DINOv2Detector, resize_mode='torch' (grey repeated to RGB first)."""
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(224, 224), mode='bicubic', antialias=True) / 255
    x = x - torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    return x / torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


def reference_features(net, images):
    with torch.no_grad():
        if hasattr(F, 'scaled_dot_product_attention'):
            return net(edm2_preprocess(images))
        F.scaled_dot_product_attention = einsum_attention
        try:
            return net(edm2_preprocess(images))
        finally:
            del F.scaled_dot_product_attention


# ----------------------------------------------------------------------------
# Steps.


def build_random_vitl14(repo):
    os.environ.setdefault('XFORMERS_DISABLED', '1')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.manual_seed(0)
        net = torch.hub.load(repo, MODEL, source='local', pretrained=False).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('attn.qkv.weight'):
                p.normal_(std=p.shape[1] ** -0.5)
    return net


def export(repo, weights, out_dir):
    cmd = [sys.executable, os.path.join(ROOT, 'scripts', 'export_detectors.py'), '--which', 'dinov2',
           '--dinov2-repo', repo, '--dinov2-weights', weights, '--out-dir', out_dir]
    print('$', ' '.join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        sys.exit(f'export failed with exit status {r.returncode}')
    return os.path.join(out_dir, 'dinov2.pt')


def relative_error(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def test_images():
    gen = torch.Generator().manual_seed(2)
    shapes = {'colour, batch 2, 64x64': [2, 3, 64, 64], 'colour, batch 5, 96x80': [5, 3, 96, 80],
              'grey, batch 2, 64x64': [2, 1, 64, 64], 'grey, batch 5, 32x32': [5, 1, 32, 32]}
    return {k: torch.randint(0, 256, s, generator=gen, dtype=torch.uint8) for k, s in shapes.items()}


def compare(label, got, want):
    err = relative_error(got, want)
    verdict = 'ok' if err <= TOLERANCE else 'FAIL'
    print(f'{verdict}: {label}: {list(got.shape)} features, max relative error {err:.2e} (bound {TOLERANCE:g})')
    return err <= TOLERANCE


def check_sensitivity(net, images, want):
    """The comparison must notice wrong attention: uniform attention has to move the features far more."""
    def uniform(q, k, v, **kwargs):
        return v.mean(dim=-2, keepdim=True).expand_as(v)
    saved = getattr(F, 'scaled_dot_product_attention', None)
    F.scaled_dot_product_attention = uniform
    try:
        with torch.no_grad():
            wrong = net(edm2_preprocess(images))
    finally:
        if saved is None:
            del F.scaled_dot_product_attention
        else:
            F.scaled_dot_product_attention = saved
    err = relative_error(wrong, want)
    print(f"{'ok' if err > 1e3 * TOLERANCE else 'FAIL'}: uniform attention moves the features by {err:.2e} relative")
    return err > 1e3 * TOLERANCE


def write_pngs(images, folder):
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(images):
        pixels = img.permute(1, 2, 0).numpy()
        Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(os.path.join(folder, f'{i:06d}.png'))
    return folder


def run_tool(cmd):
    print('$', ' '.join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f'FAIL: {cmd[1]}: {r.stderr.strip()}')
    return r


def frechet(a, b):
    """FD of two feature sets in float64: |mu_a - mu_b|^2 + tr S_a + tr S_b - 2 tr (S_a^1/2 S_b S_a^1/2)^1/2."""
    a, b = a.double().numpy(), b.double().numpy()
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, u = np.linalg.eigh(sa)
    root = (u * np.sqrt(np.clip(w, 0, None))) @ u.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sb @ root), 0, None)).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * cross)


def check_autoguide(binary, detector, colour, grey, want_colour, want_grey, work):
    """`autoguide ref` features of the colour PNGs, then `autoguide fid` of the grey PNGs against their stats."""
    import json
    stats, features = os.path.join(work, 'stats.npz'), os.path.join(work, 'features.npy')
    r = run_tool([binary, 'ref', '--detector', detector, '--images', write_pngs(colour, os.path.join(work, 'colour')),
                  '--out', stats, '--features-out', features, '--device', 'cpu', '--batch', '2', '-q'])
    if r.returncode != 0:
        return [False]
    passed = [compare('autoguide ref on colour PNGs', torch.from_numpy(np.load(features)), want_colour)]
    r = run_tool([binary, 'fid', '--detector', detector, '--images', write_pngs(grey, os.path.join(work, 'grey')),
                  '--ref', stats, '--device', 'cpu', '--batch', '3', '--json'])
    if r.returncode != 0:
        return passed + [False]
    got, want = json.loads(r.stdout)['fd'], frechet(want_grey, want_colour)
    err = abs(got - want) / abs(want)
    print(f"{'ok' if err <= 1e-4 else 'FAIL'}: autoguide fid grey vs colour: {got:.6g}, "
          f'numpy on the reference features {want:.6g}, relative difference {err:.1e} (bound 1e-4)')
    return passed + [err <= 1e-4]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('repo', metavar='DINOV2_SRC', help='local clone of facebookresearch/dinov2')
    parser.add_argument('--work', metavar='DIR',
                        help='keep the weights, dinov2.pt and PNGs here (default: a temporary folder)')
    parser.add_argument('--autoguide', metavar='BIN', help='also run BIN ref and BIN fid on the images as PNGs')
    args = parser.parse_args()
    repo = os.path.abspath(args.repo)
    print(f'torch {torch.__version__}; F.scaled_dot_product_attention '
          f"{'present' if hasattr(F, 'scaled_dot_product_attention') else 'missing'}", flush=True)
    with tempfile.TemporaryDirectory(prefix='check-dinov2-') as tmp:
        work = os.path.abspath(args.work or tmp)
        os.makedirs(work, exist_ok=True)
        net = build_random_vitl14(repo)
        weights = os.path.join(work, f'{MODEL}_random.pth')
        torch.save(net.state_dict(), weights)
        detector = export(repo, weights, os.path.join(work, 'out'))
        exported = torch.jit.load(detector, map_location='cpu')
        images = test_images()
        passed, wants = [], {}
        for label, x in images.items():
            wants[label] = reference_features(net, x)
            with torch.no_grad():
                passed.append(compare(label, exported(x), wants[label]))
        c, g = 'colour, batch 5, 96x80', 'grey, batch 5, 32x32'
        passed.append(check_sensitivity(net, images[c], wants[c]))
        if args.autoguide:
            passed += check_autoguide(args.autoguide, detector, images[c], images[g], wants[c], wants[g], work)
    print('all checks passed' if all(passed) else 'SOME CHECKS FAILED')
    return 0 if all(passed) else 1


if __name__ == '__main__':
    sys.exit(main())
