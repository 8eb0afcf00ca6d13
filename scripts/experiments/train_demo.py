#!/usr/bin/env python3
"""Train the demo models on Fashion-MNIST (CPU) and write them to models/demo.

    /usr/bin/python3 scripts/experiments/train_demo.py            # everything, ~1 hour on 2 cores
    /usr/bin/python3 scripts/experiments/train_demo.py --roles guide --scale 0.01   # a quick smoke run

Roles, as in the autoguidance paper (Sec. 5): a class-conditional main network, a smaller guide
trained for 1/8 of the main network's images, an unconditional network for CFG, and a classifier
whose features are the demo's metric (with an autoencoder's bottleneck as a second feature space,
autoguide_py.autoencoder). Each network trains with EDM2's recipe
(autoguide_py.training), keeps power-function EMAs at sigma_rel 0.05 and 0.10 and saves them as
snapshots in --workdir; the exported file is the post-hoc EMA (autoguide_py.phema) at the role's
--ema-* length, chosen as models/demo/README.md describes. Mixed precision (bf16 autocast on the
CPU, where EDM2 uses fp16 on GPUs) roughly doubles the training speed on CPUs with AVX512-BF16 or AMX, and
is used there by default; elsewhere bf16 is emulated (on an AVX2-only EPYC, a guide trained at 1.4 images/s
in bf16 against 34 in fp32) and --precision auto trains in fp32.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # this folder's modules
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
from autoguide_py import pyenv  # noqa: E402

pyenv.ensure_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from autoguide_py import edm2, fmnist, phema, training  # noqa: E402
from autoguide_py import autoencoder  # noqa: E402
from autoguide_py.atomic_write import atomic_path  # noqa: E402
from autoguide_py.classifier import Classifier, Detector  # noqa: E402
from autoguide_py.export import export_precond, sha256_file  # noqa: E402
from autoguide_py.zip_checkpoint import load_torch_checkpoint  # noqa: E402

# EDM2's pixel-space (ImageNet-64) settings, scaled to a 32x32 one-channel task.
COMMON = dict(batch_size=128, P_mean=-0.8, P_std=1.6, ema_stds=[0.050, 0.100], rampup_img=4096,
              ref_batches=400)
NET = dict(img_resolution=fmnist.RESOLUTION, img_channels=1, use_fp16=False, channel_mult=[1, 2, 2, 2],
           num_blocks=1, attn_resolutions=[8])
ROLES = {
    'main': dict(label_dim=10, model_channels=32, total_img=131_072, ref_lr=0.012, seed=1),
    'guide': dict(label_dim=10, model_channels=16, total_img=131_072 // 8, ref_lr=0.012, seed=2),
    'uncond': dict(label_dim=0, model_channels=24, total_img=65_536, ref_lr=0.012, seed=3),
    # The guide trained twice as long (docs/experiments.md, "Two feature spaces"): same seed and schedule, so up
    # to 16k images it retraces the guide's run.
    'guide-long': dict(label_dim=10, model_channels=16, total_img=131_072 // 4, ref_lr=0.012, seed=2),
}
EMA = {'main': 0.10, 'guide': 0.05, 'uncond': 0.10, 'guide-long': 0.05}
SNAPSHOTS = 8  # per run, evenly spaced


def log(msg):
    print(msg, flush=True)


def native_bf16():
    """Whether this CPU computes bf16 itself (elsewhere LibTorch emulates it, far slower than fp32)."""
    try:
        flags = open('/proc/cpuinfo').read().split()
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def train_net(role, images, labels, workdir, scale, bf16):
    cfg = dict(COMMON, **ROLES[role])
    total = max(cfg['batch_size'], int(cfg['total_img'] * scale) // cfg['batch_size'] * cfg['batch_size'])
    torch.manual_seed(cfg['seed'])
    net = edm2.Precond(label_dim=cfg['label_dim'], model_channels=cfg['model_channels'], **NET)
    params = sum(p.numel() for p in net.parameters())
    log(f'{role}: {params / 1e6:.2f} M parameters, {total} images')
    onehot = torch.nn.functional.one_hot(labels, 10).float() if cfg['label_dim'] else None
    snapdir = os.path.join(workdir, role)
    os.makedirs(snapdir, exist_ok=True)
    for old in glob.glob(os.path.join(snapdir, '*.pt')):
        os.remove(old)

    def snapshot(nimg, std, ema_net):
        training.save_checkpoint(os.path.join(snapdir, f'{role}-{nimg // 1000:07d}-{std:.3f}.pt'), ema_net,
                                 nimg=nimg, ema_std=std)

    snapshot_img = max(cfg['batch_size'], total // SNAPSHOTS // cfg['batch_size'] * cfg['batch_size'])
    start = time.time()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        training.train(net, images, onehot, total_img=total, batch_size=cfg['batch_size'], ref_lr=cfg['ref_lr'],
                       ref_batches=cfg['ref_batches'], rampup_img=cfg['rampup_img'] * min(scale, 1),
                       P_mean=cfg['P_mean'], P_std=cfg['P_std'], ema_stds=cfg['ema_stds'],
                       snapshot_img=snapshot_img, snapshot_fn=snapshot, seed=cfg['seed'], log=log)
    seconds = time.time() - start
    log(f'{role}: trained in {seconds / 60:.1f} min')
    return dict(params=params, images=total, seconds=round(seconds, 1), precision='bf16' if bf16 else 'fp32', **cfg)


def export_role(role, workdir, outdir, ema_std, info):
    """The post-hoc EMA of one role's snapshots at ema_std, exported for autoguide."""
    snaps = []
    for path in sorted(glob.glob(os.path.join(workdir, role, '*.pt'))):
        ckpt = load_torch_checkpoint(path)
        snaps.append((ckpt['nimg'], ckpt['ema_std'], ckpt['state_dict'], ckpt['config']))
    if not snaps:
        raise SystemExit(f'error: no snapshots of {role} in {workdir}; train it first (--roles {role})')
    nimg = max(s[0] for s in snaps)
    (state,) = phema.reconstruct([s[:3] for s in snaps], [ema_std], nimg)
    config = dict(snaps[0][3])
    net = edm2.Precond(**config)
    net.load_state_dict(state)
    path = os.path.join(outdir, f'{role}.pt')
    export_precond(net.eval(), path, dict(training_kimg=nimg // 1000, ema_std=ema_std,
                                           source_file=f'scripts/experiments/train_demo.py ({role})'), verify=True)
    info.update(file=path, ema_std=ema_std, training_kimg=nimg // 1000, sha256=sha256_file(path),
                bytes=os.path.getsize(path))
    log(f'wrote {path} (post-hoc EMA {ema_std:.3f} at {nimg} images)')


def train_detector(images, labels, outdir, scale, autoguide):
    """Classifier on the training split, test accuracy on the test split, then the detector file and
    the training set's reference statistics (computed by `autoguide ref`, the code the metric uses)."""
    torch.manual_seed(4)
    clf = Classifier()
    x = fmnist.to_model_range(images)
    epochs = max(1, round(2 * scale))
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
    steps = epochs * (len(x) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(5)
    start = time.time()
    clf.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(len(x) // 128):
            idx = perm[i * 128:(i + 1) * 128]
            batch = x[idx]
            # Light augmentation: horizontal flips keep every Fashion-MNIST class a valid item.
            flip = torch.rand(len(idx), generator=gen) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
            loss = torch.nn.functional.cross_entropy(clf(batch), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        log(f'detector: epoch {epoch + 1}/{epochs} loss {loss.item():.3f}')
    clf.eval()
    det = Detector(clf).eval()
    test_images, test_labels = fmnist.load('test')
    with torch.no_grad():
        pred = torch.cat([det.classify(test_images[i:i + 1000]) for i in range(0, len(test_images), 1000)])
    accuracy = float((pred == test_labels).float().mean())
    log(f'detector: test accuracy {accuracy * 100:.2f}% ({time.time() - start:.0f} s)')
    info = save_detector(det, images, outdir, 'detector.pt', 'fmnist-train-stats.npz', autoguide)
    return dict(info, test_accuracy=accuracy, epochs=epochs, seconds=round(time.time() - start, 1))


def save_detector(det, images, outdir, name, stats_name, autoguide):
    """The scripted detector and the training set's statistics in its space, by `autoguide ref` (the code
    the metric uses)."""
    path = os.path.join(outdir, name)
    with atomic_path(path) as tmp:
        torch.jit.script(det).save(tmp)
    npy = os.path.join(outdir, '.train-images.npy')
    np.save(npy, images.numpy())
    stats = os.path.join(outdir, stats_name)
    try:
        subprocess.run([autoguide, 'ref', '--detector', path, '--images', npy, '--out', stats, '--overwrite'],
                       check=True)
    finally:
        os.remove(npy)
    return dict(file=path, sha256=sha256_file(path), bytes=os.path.getsize(path), stats=stats,
                stats_sha256=sha256_file(stats))


def train_encoder(images, outdir, scale, autoguide):
    """The second feature space: an autoencoder's bottleneck, trained on the training split; its test-split
    reconstruction error says how much of the image it keeps."""
    start = time.time()
    epochs = max(1, round(3 * scale))
    ae = autoencoder.train(images, epochs=epochs, log=log)
    test_images, _ = fmnist.load('test')
    mse = autoencoder.reconstruction_mse(ae, test_images)
    log(f'encoder: test reconstruction MSE {mse:.4f} (PSNR {10 * np.log10(4 / mse):.1f} dB, [-1,1] range)')
    info = save_detector(autoencoder.EncoderDetector(ae).eval(), images, outdir, 'encoder.pt',
                         'fmnist-train-stats-encoder.npz', autoguide)
    return dict(info, test_mse=mse, epochs=epochs, seconds=round(time.time() - start, 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--outdir', default='models/demo')
    ap.add_argument('--workdir', default='out/demo-train', help='snapshots and the training record')
    ap.add_argument('--roles', default='detector,encoder,guide,main,uncond')
    ap.add_argument('--export-only', action='store_true', help='re-export from existing snapshots')
    ap.add_argument('--scale', type=float, default=1.0, help='multiply the training lengths (smoke tests)')
    ap.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: all cores)')
    ap.add_argument('--precision', choices=['auto', 'bf16', 'fp32'], default='auto',
                    help='training precision of the diffusion nets (auto: bf16 autocast where the CPU has it natively)')
    ap.add_argument('--autoguide', default='build/autoguide', help='the CLI, for the reference statistics')
    for role, std in EMA.items():
        ap.add_argument(f'--ema-{role}', type=float, default=std, help=f'post-hoc EMA std of {role}')
    args = ap.parse_args(argv)
    roles = args.roles.split(',')
    for r in roles:
        if r not in ROLES and r not in ('detector', 'encoder'):
            ap.error(f'unknown role {r} (known: detector, encoder, {", ".join(ROLES)})')
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.makedirs(args.outdir, exist_ok=True)
    os.makedirs(args.workdir, exist_ok=True)
    record_path = os.path.join(args.workdir, 'record.json')
    record = json.load(open(record_path)) if os.path.exists(record_path) else {}

    images, labels = fmnist.load('train')
    x = fmnist.to_model_range(images)
    for role in roles:
        if role == 'detector':
            if not args.export_only:
                record['detector'] = train_detector(images, labels, args.outdir, args.scale, args.autoguide)
        elif role == 'encoder':
            if not args.export_only:
                record['encoder'] = train_encoder(images, args.outdir, args.scale, args.autoguide)
        else:
            if not args.export_only:
                bf16 = args.precision == 'bf16' or (args.precision == 'auto' and native_bf16())
                record[role] = train_net(role, x, labels, args.workdir, args.scale, bf16)
            export_role(role, args.workdir, args.outdir, getattr(args, 'ema_' + role.replace('-', '_')), record.setdefault(role, {}))
        with open(record_path, 'w') as f:
            json.dump(record, f, indent=1)
    log(json.dumps(record, indent=1))


if __name__ == '__main__':
    main()
