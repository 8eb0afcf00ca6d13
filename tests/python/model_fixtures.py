"""Tiny EDM2 networks with random weights, exported through our own path, for the C++ and CLI tests.

Run as a script to write the fixtures the C++ tests read (ctest does this first):
    python3 tests/python/model_fixtures.py OUTDIR
"""
import copy
import json
import os
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), 'scripts'))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from autoguide_py import edm2  # noqa: E402
from autoguide_py.export import export_precond  # noqa: E402

RES, CHANNELS, LABELS = 8, 3, 10
# Small but complete: two levels, attention at 4x4 (channels_per_head 16 gives 2-4 heads), skip convs.
ARCH = dict(channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], channels_per_head=16)
ROLES = {  # role: (label_dim, model_channels, weight seed)
    'main': (LABELS, 32, 1),
    'guide': (LABELS, 16, 2),
    'uncond': (0, 16, 3),
}


def random_net(label_dim, model_channels, seed, img_channels=CHANNELS):
    torch.manual_seed(seed)
    net = edm2.Precond(img_resolution=RES, img_channels=img_channels, label_dim=label_dim,
                       model_channels=model_channels, **ARCH)
    with torch.no_grad():  # EDM2 starts its gains at 0, which would hide the whole U-Net
        for name, p in net.named_parameters():
            if name.endswith('gain'):
                p.uniform_(0.5, 1.5)
    return net.eval()


def export_role(role, outdir):
    label_dim, mc, seed = ROLES[role]
    net = random_net(label_dim, mc, seed)
    path = os.path.join(outdir, f'{role}.pt')
    export_precond(net, path, {'source_file': f'{role}-fixture'})
    net.prepare()
    return net, path


def export_nan_guide(outdir):
    """The guide with one damaged (NaN) weight, as a corrupt download would have: every output holds NaN."""
    label_dim, mc, seed = ROLES['guide']
    net = random_net(label_dim, mc, seed)
    with torch.no_grad():
        net.unet.out_conv.weight[0].fill_(float('nan'))
    path = os.path.join(outdir, 'guide_nan.pt')
    export_precond(net, path, {'source_file': 'nan-fixture'})
    return path


class FaultyDenoiser(torch.nn.Module):
    """D(x) = x / 2, except NaN for samples of one class once sigma falls below a threshold: a net that breaks
    mid-run, in one batch only."""

    def __init__(self, bad_class: int, below: float):
        super().__init__()
        self.bad_class = bad_class
        self.below = below

    @torch.jit.export
    def prepare(self) -> None:
        pass

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: Optional[torch.Tensor] = None):
        d = x * 0.5
        if class_labels is None:
            return d
        bad = (class_labels[:, self.bad_class] > 0) & (sigma.reshape(-1) < self.below)
        return torch.where(bad.reshape(-1, 1, 1, 1), torch.full_like(d, float('nan')), d)


def seed_class(seed):
    """The class EDM2 draws for a seed: randn of the noise first, then randint."""
    gen = torch.Generator().manual_seed(seed)
    torch.randn([CHANNELS, RES, RES], generator=gen)
    return int(torch.randint(LABELS, size=[], generator=gen))


FAULTY_SEED = 2  # the faulty net fails on this seed's class only; seeds 0 and 1 come before it
FAULTY_BELOW = 1.0  # and only below this sigma, i.e. partway through a run


def export_faulty_net(outdir, below):
    """FaultyDenoiser for the class of FAULTY_SEED, with the metadata of the fixture nets."""
    bad = seed_class(FAULTY_SEED)
    assert bad not in (seed_class(0), seed_class(1)), 'seeds before FAULTY_SEED must sample cleanly'
    meta = {'format_version': 1, 'img_resolution': RES, 'img_channels': CHANNELS, 'label_dim': LABELS,
            'sigma_data': 0.5, 'encoder': {'type': 'rgb'}, 'source_file': 'faulty-fixture'}
    path = os.path.join(outdir, 'faulty.pt')
    torch.jit.save(torch.jit.script(FaultyDenoiser(bad, below)), path,
                   _extra_files={'autoguide.json': json.dumps(meta)})
    return path


# EDM2's StabilityVAEEncoder constants and its float32 arithmetic (edm2.md section 3).
VAE_RAW_MEAN, VAE_RAW_STD = [5.81, 3.25, 0.12, -2.15], [4.17, 4.62, 3.71, 3.28]
VAE_SCALE = np.float32(0.5) / np.array(VAE_RAW_STD, dtype=np.float32)
VAE_BIAS = np.float32(0) - np.array(VAE_RAW_MEAN, dtype=np.float32) * VAE_SCALE
# SD's decoder with 4 levels (8x upsampling), a shortcut conv (64 -> 32) and 32-group norms, at few channels.
VAE_SMALL = dict(block_out_channels=(32, 32, 64, 64), layers_per_block=1)


def small_vae(seed=4, **overrides):
    """A small SD VAE decoder with random weights whose outputs fall mostly inside [0, 1]."""
    from autoguide_py.vae import VaeDecoder
    torch.manual_seed(seed)
    vae = VaeDecoder(**dict(VAE_SMALL, **overrides))
    with torch.no_grad():  # the norms start at 1 and 0, which would leave their affine step untested
        for name, p in vae.named_parameters():
            if 'norm' in name and name.endswith('weight'):
                p.uniform_(0.5, 1.5)
            elif 'norm' in name:
                p.normal_(0, 0.2)
        vae.decoder.conv_out.bias.add_(0.5)
    return vae.eval().requires_grad_(False)


def latent_net(seed=5, label_dim=LABELS):
    """A tiny EDM2 net on 4-channel 8x8 latents, with EDM2's VAE encoder metadata."""
    net = random_net(label_dim, 16, seed, img_channels=4)
    encoder = {'type': 'vae', 'vae_name': 'stabilityai/sd-vae-ft-mse',
               'scale': [float(v) for v in VAE_SCALE], 'bias': [float(v) for v in VAE_BIAS]}
    return net, {'encoder': encoder, 'source_file': 'latent-fixture'}


def write_vae_fixtures(outdir):
    from autoguide_py.vae import export_vae
    vae = small_vae()
    export_vae(vae, os.path.join(outdir, 'vae.pt'), {'source_file': 'vae-fixture'})
    z = torch.randn([3, 4, 5, 6], generator=torch.Generator().manual_seed(9))  # not square: H and W stay apart
    np.save(os.path.join(outdir, 'vae_z.npy'), z.numpy())
    with torch.no_grad():
        np.save(os.path.join(outdir, 'vae_out.npy'), vae(z).numpy())
        # The same decoder in bf16 through PyTorch's own kernels, the reference for the C++ bf16 path.
        bf16 = copy.deepcopy(vae).to(torch.bfloat16)
        np.save(os.path.join(outdir, 'vae_out_bf16.npy'), bf16(z.to(torch.bfloat16)).float().numpy())


def load_exported(path, device='cpu'):
    """An exported model file as the C++ loader runs it: graph optimizer off (eager numerics), prepared."""
    torch._C._set_graph_executor_optimize(False)
    net = torch.jit.load(path, map_location=device)
    net.prepare()
    return net


def write_cpp_fixtures(outdir):
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(123)
    x = torch.randn([4, CHANNELS, RES, RES], generator=gen) * 2
    labels = torch.nn.functional.one_hot(torch.tensor([0, 3, 9, 3]), LABELS).float()
    np.save(os.path.join(outdir, 'x.npy'), x.numpy())
    np.save(os.path.join(outdir, 'labels.npy'), labels.numpy())
    with torch.no_grad():
        for role in ('main', 'uncond'):
            net, _ = export_role(role, outdir)
            for sigma in (0.002, 1.0, 80.0):
                s = torch.tensor(sigma)
                out = net(x, s, labels if net.label_dim else None)
                np.save(os.path.join(outdir, f'{role}_sigma{sigma:g}.npy'), out.numpy())
                if net.label_dim:
                    np.save(os.path.join(outdir, f'{role}_nolabels_sigma{sigma:g}.npy'), net(x, s, None).numpy())
        export_role('guide', outdir)
    export_nan_guide(outdir)
    export_faulty_net(outdir, FAULTY_BELOW)
    # Per-seed streams exactly as EDM2 draws them: noise [C,R,R], then randint(label_dim), then more noise.
    seeds = [0, 1, 7, 4242, (1 << 32) + 5]
    noise, classes, churn = [], [], []
    for s in seeds:
        g = torch.Generator().manual_seed(s % (1 << 32))
        noise.append(torch.randn([CHANNELS, RES, RES], generator=g))
        classes.append(torch.randint(LABELS, size=[], generator=g))
        churn.append(torch.randn([CHANNELS, RES, RES], generator=g))
    np.save(os.path.join(outdir, 'rng_seeds.npy'), np.array(seeds, dtype=np.int64))
    np.save(os.path.join(outdir, 'rng_noise.npy'), torch.stack(noise).numpy())
    np.save(os.path.join(outdir, 'rng_classes.npy'), torch.stack(classes).numpy())
    np.save(os.path.join(outdir, 'rng_churn.npy'), torch.stack(churn).numpy())
    # The reference's float32 schedule arithmetic, for a bit-exact comparison.
    for n, smin, smax, rho in ((32, 0.002, 80.0, 7.0), (13, 0.01, 5.0, 3.0)):
        i = torch.arange(n, dtype=torch.float32)
        t = (smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
        np.save(os.path.join(outdir, f'schedule_{n}.npy'), torch.cat([t, torch.zeros(1)]).numpy())
    write_vae_fixtures(outdir)
    write_fd_fixtures(outdir)


def write_fd_fixtures(outdir):
    """Features, resample rows and fd_bootstrap.py's own numbers on those rows, for test_fd_uncertainty.cpp.
    The rows come from torch.Generator().manual_seed(7), as the C++ bootstrap_indices draws them."""
    try:
        from autoguide_py import fd_bootstrap
    except ImportError as e:  # no scipy: the C++ test skips the comparison
        print(f'FD fixtures skipped: {e}', file=sys.stderr)
        return
    n, d, resamples, confidence = 60, 5, 9, 0.9
    rng = np.random.default_rng(11)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 0.5
    b = a + 0.3 * rng.normal(size=(n, d))  # a second setting on the same seeds: correlated with a
    ref_mu, ref_sigma = fd_bootstrap.feature_stats(rng.normal(size=(400, d)) * np.linspace(0.5, 2, d))
    g = torch.Generator().manual_seed(7)
    rows = np.stack([torch.randint(n, (n,), generator=g).numpy() for _ in range(resamples)])

    def fd(x):
        return fd_bootstrap.frechet_distance(*fd_bootstrap.feature_stats(x), ref_mu, ref_sigma)

    single = fd_bootstrap._normal_interval(fd(a), [fd(a[r]) for r in rows], confidence)
    paired = fd_bootstrap._normal_interval(fd(a) - fd(b), [fd(a[r]) - fd(b[r]) for r in rows], confidence)
    for name, array in (('a', a), ('b', b), ('ref_mu', ref_mu), ('ref_sigma', ref_sigma), ('rows', rows),
                        ('expected', np.array(single + paired, dtype=np.float64))):
        np.save(os.path.join(outdir, f'fd_{name}.npy'), array)


if __name__ == '__main__':
    torch.set_num_threads(1)
    write_cpp_fixtures(sys.argv[1])
    print(f'fixtures written to {sys.argv[1]}', file=sys.stderr)
