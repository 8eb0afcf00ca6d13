"""EDM2's training recipe (scripts/autoguide_py/training.py) and the train mode of our edm2.Precond."""

import pytest
import torch
from conftest import TINY_COND, inputs, make_net

from autoguide_py import edm2, fmnist, training


@pytest.mark.parametrize('nimg,want', [(0, 0.0), (512, 0.01 * 512 / 1024), (1024, 0.01), (64 * 100, 0.01),
                                       (64 * 400, 0.01 / 2), (64 * 900, 0.01 / 3)])
def test_learning_rate_is_eq67_with_warmup(nimg, want):
    # ref_lr 0.01, t_ref 100 batches of 64, warm-up over 1024 images.
    assert training.learning_rate(nimg, 64, 0.01, 100, 1024) == pytest.approx(want, rel=1e-12)


def test_forced_weight_norm_gives_unit_rms_rows():
    net = make_net(TINY_COND).train()
    training.force_weight_norm(net)
    for m in net.modules():
        if isinstance(m, edm2.MPConv):
            w = m.weight.flatten(1)
            rms = w.square().mean(1).sqrt()
            # EDM2's normalize adds eps 1e-4 to the norm, so rows land just below unit RMS.
            assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3)


def test_train_mode_is_differentiable_and_eval_mode_unchanged():
    net = make_net(TINY_COND)
    x, labels = inputs(TINY_COND)
    sigma = torch.tensor([0.1, 1.0, 20.0])
    net.prepare()
    before = net(x, sigma, labels)
    net.train().requires_grad_(True)
    net.prepare()
    out = net(x, sigma, labels)
    out.square().sum().backward()
    convs = [m for m in net.modules() if isinstance(m, edm2.MPConv)]
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in convs[:5])
    torch.testing.assert_close(out.detach(), before, rtol=0, atol=0)
    net.eval().prepare()
    assert net.unet.out_conv.w_eff.grad_fn is None  # eval-mode prepare keeps no graph


def test_loss_matches_the_formula_and_training_lowers_it():
    torch.manual_seed(0)
    net = edm2.Precond(img_resolution=8, img_channels=1, label_dim=0, use_fp16=False, model_channels=8,
                       channel_mult=[1, 2], num_blocks=1, attn_resolutions=[])
    images = torch.rand(64, 1, 8, 8).round() * 2 - 1
    # The loss of one batch equals Eq. 21 written out here with the same random draws.
    net.train().prepare()
    gen = torch.Generator().manual_seed(3)
    loss = training.edm2_loss(net, images[:4], None, -0.8, 1.6, generator=gen)
    gen = torch.Generator().manual_seed(3)
    sigma = (torch.randn([4, 1, 1, 1], generator=gen) * 1.6 - 0.8).exp()
    noise = torch.randn([4, 1, 8, 8], generator=gen) * sigma
    d = net(images[:4] + noise, sigma, None)
    u = net.logvar_linear(net.logvar_fourier(sigma.flatten().log() / 4)).reshape(-1, 1, 1, 1)
    lam = (sigma ** 2 + 0.25) / (sigma * 0.5) ** 2
    want = (lam / u.exp() * (d - images[:4]) ** 2 + u).flatten(1).sum(1)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-4)

    def mean_loss():
        net.train().prepare()
        g = torch.Generator().manual_seed(99)
        with torch.no_grad():
            return float(training.edm2_loss(net, images, None, -0.8, 1.6, generator=g).mean())

    start = mean_loss()
    snaps = []
    training.train(net, images, None, total_img=64 * 60, batch_size=64, ref_lr=0.01, ref_batches=30,
                   rampup_img=256, P_mean=-0.8, P_std=1.6, ema_stds=[0.05, 0.10], snapshot_img=64 * 20,
                   snapshot_fn=lambda n, s, e: snaps.append((n, s)), log=lambda m: None)
    assert mean_loss() < start - 0.1 * abs(start)
    assert snaps == [(n, s) for n in (1280, 2560, 3840) for s in (0.05, 0.10)]


def test_fashion_mnist_is_padded_with_background():
    images, labels = fmnist.load('test')
    assert images.shape == (10000, 1, 32, 32) and images.dtype == torch.uint8
    assert int(images[:, :, :2].max()) == 0 and int(images[:, :, :, -2:].max()) == 0
    assert sorted(labels.unique().tolist()) == list(range(10))
    x = fmnist.to_model_range(images[:2])
    assert float(x.min()) == -1 and 0.9 < float(x.max()) <= 1
