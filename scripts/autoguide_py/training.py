"""EDM2's training recipe for our edm2.Precond (Karras et al. 2024, Sec. 2-3 and App. B).

- noise levels log-normal: ln sigma ~ N(P_mean, P_std^2) (EDM Sec. 5);
- loss: lambda(sigma) / e^u(sigma) * |D(y + n; sigma) - y|^2 + u(sigma), lambda = (sigma^2 + sigma_data^2)
  / (sigma sigma_data)^2, with the learned uncertainty u = logvar (Eq. 21), summed over pixels and
  averaged over the batch;
- forced weight normalisation before every step (Eq. 66), so the stored weights stay unit-norm;
- Adam (beta 0.9, 0.99) with the inverse square root decay after t_ref batches and a linear warm-up
  (Eq. 67);
- power-function EMA at two relative stds, saved as snapshots for post-hoc reconstruction.
"""

import math
import time

import torch

from . import edm2
from .atomic_write import atomic_path
from .phema import PowerFunctionEMA


def learning_rate(nimg, batch_size, ref_lr, ref_batches, rampup_img):
    """Eq. 67: alpha_ref / sqrt(max(t / t_ref, 1)), times a linear ramp over the first rampup_img images."""
    lr = ref_lr
    if ref_batches > 0:
        lr /= math.sqrt(max(nimg / (ref_batches * batch_size), 1))
    if rampup_img > 0:
        lr *= min(nimg / rampup_img, 1)
    return lr


@torch.no_grad()
def force_weight_norm(net):
    """Eq. 66, applied to the stored weights: each output channel of every MPConv back to unit RMS."""
    for module in net.modules():
        if isinstance(module, edm2.MPConv):
            w = module.weight.to(torch.float32)
            module.weight.copy_(edm2.normalize(w, list(range(1, w.dim()))))


def edm2_loss(net, images, labels, P_mean, P_std, generator=None):
    """Per-image loss (Eq. 21) of a prepared, training-mode edm2.Precond."""
    n = images.shape[0]
    rnd = torch.randn([n, 1, 1, 1], generator=generator)
    sigma = (rnd * P_std + P_mean).exp()
    sd = net.sigma_data
    weight = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
    noise = torch.randn(images.shape, generator=generator) * sigma
    denoised = net(images + noise, sigma, labels)
    logvar = net.logvar_linear(net.logvar_fourier(sigma.flatten().log() / 4)).reshape(-1, 1, 1, 1)
    loss = weight / logvar.exp() * (denoised - images) ** 2 + logvar
    return loss.flatten(1).sum(1)


def train(net, images, labels, *, total_img, batch_size, ref_lr, ref_batches, rampup_img, P_mean, P_std,
          ema_stds, snapshot_img, snapshot_fn, seed=0, log=print, log_every=50):
    """Train net (an edm2.Precond) in place on images in [-1, 1] with one-hot labels (or None).

    snapshot_fn(nimg, std, ema_net) is called every snapshot_img images and at the end."""
    gen = torch.Generator().manual_seed(seed)
    net.eval().prepare()  # no autograd graph in the prepared weights, so the EMA copies can be made
    ema = PowerFunctionEMA(net, ema_stds)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=ref_lr, betas=(0.9, 0.99), eps=1e-8)
    nimg = 0
    start = time.time()
    next_snapshot = snapshot_img
    losses = []
    while nimg < total_img:
        idx = torch.randint(len(images), [batch_size], generator=gen)
        x = images[idx]
        c = labels[idx] if labels is not None else None
        force_weight_norm(net)
        net.prepare()
        loss = edm2_loss(net, x, c, P_mean, P_std, generator=gen).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nimg += batch_size
        for g in opt.param_groups:
            g['lr'] = learning_rate(nimg, batch_size, ref_lr, ref_batches, rampup_img)
        for p in net.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=0, neginf=0, out=p.grad)
        opt.step()
        ema.update(net, nimg, batch_size)
        losses.append(float(loss))
        step = nimg // batch_size
        if step % log_every == 0:
            rate = nimg / (time.time() - start)
            log(f'  {nimg / 1000:8.1f} kimg  loss {sum(losses) / len(losses):9.4f}  lr {opt.param_groups[0]["lr"]:.5f}'
                f'  {rate:6.1f} img/s  {(total_img - nimg) / rate / 60:5.1f} min left')
            losses = []
        if nimg >= next_snapshot or nimg >= total_img:
            for std, ema_net in ema.averages():
                snapshot_fn(nimg, std, ema_net)
            next_snapshot += snapshot_img
    net.eval()
    return ema


def save_checkpoint(path, net, *, nimg=None, ema_std=None, encoder=None, extra=None, keep_dtype=False):
    """Our checkpoint format (what export_edm2.py and phema.py read): config + fp32 state dict (or the
    tensors' own dtypes with keep_dtype, e.g. fp16 post-hoc averages of EDM2's fp16 snapshots)."""
    ckpt = dict(config=dict(net.config), state_dict={k: v.detach().to(v.dtype if keep_dtype else torch.float32).clone()
                                                     for k, v in net.state_dict().items()},
                kimg=None if nimg is None else nimg // 1000, nimg=nimg, ema_std=ema_std,
                encoder=encoder or {'type': 'rgb'})
    ckpt.update(extra or {})
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
