"""The FLOP count the benchmark reports, against the profiler's own count and a hand count."""
import sys
import warnings

import pytest
import torch

from autoguide_py import edm2
from autoguide_py.flops import count_flops
from conftest import ROOT, TINY_COND, TINY_UNCOND, make_net

# The ops at which torch.profiler counts FLOPs for eager calls: convolutions, linear layers, attention.
FLOP_OPS = ('aten::conv2d', 'aten::mm', 'aten::addmm', 'aten::bmm')


def profiler_flops(net, batch):
    res, ch = net.img_resolution, net.img_channels
    labels = None
    if net.label_dim:
        labels = torch.nn.functional.one_hot(torch.arange(batch) % net.label_dim, net.label_dim).float()
    net.prepare()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter('ignore')
        with torch.profiler.profile(with_flops=True) as prof:
            net(torch.randn(batch, ch, res, res), torch.full([batch], 2.0), labels)
    return sum(e.flops for e in prof.key_averages() if e.key in FLOP_OPS) / batch


@pytest.mark.parametrize('config', [TINY_COND, TINY_UNCOND], ids=['cond', 'uncond'])
def test_count_matches_the_profiler(config):
    net = make_net(config)
    assert count_flops(net, batch=3) == pytest.approx(profiler_flops(net, 3), rel=1e-12)


def test_count_of_a_single_convolution_by_hand():
    # The first conv of a 1-level net without blocks: 3+1 input channels, 16 outputs, 3x3, 8x8 pixels, then
    # the 16 -> 3 output conv; the embedding: 16 -> 16 noise linear (channel_mult_emb 1).
    net = edm2.Precond(img_resolution=8, img_channels=3, label_dim=0, model_channels=16, channel_mult=[1],
                       num_blocks=0, attn_resolutions=[], channel_mult_emb=1, channels_per_head=16).eval()
    # With no encoder blocks the decoder still has its two 'in' blocks (in0 with one 16-channel attention head)
    # and one block at the only level.
    blocks = [(16, 16, True), (16, 16, False), (32, 16, False)]  # (in, out, attention) per decoder block
    pixels = 64
    flops = 2 * pixels * 4 * 16 * 9 + 2 * pixels * 16 * 3 * 9 + 2 * 16 * 16  # enc conv, out conv, emb_noise
    for cin, cout, attn in blocks:
        flops += 2 * 16 * cout  # emb_linear
        flops += 2 * pixels * cin * cout * 9 + 2 * pixels * cout * cout * 9  # conv_res0, conv_res1
        if cin != cout:
            flops += 2 * pixels * cin * cout  # conv_skip
        if attn:
            flops += 2 * pixels * cout * 3 * cout + 2 * pixels * cout * cout  # qkv, proj
            flops += 4 * cout * pixels * pixels  # q.k and w.v
    assert count_flops(net) == flops


@pytest.mark.parametrize('config', [TINY_COND, TINY_UNCOND], ids=['cond', 'uncond'])
def test_bound_harness_enumerates_every_layer(config):
    # scripts/bench/bench_bound.py's layer list: its FLOPs sum to the architecture's count, less the downsampling
    # filters (not a convolution or product it times), and each variant computes the same result.
    sys.path.insert(0, str(ROOT / 'scripts' / 'bench'))
    import bench_bound
    net = make_net(config)
    ops = bench_bound.layer_shapes(net, batch=2)
    assert sum(n * bench_bound.flops(op) for op, n in ops.items()) == pytest.approx(
        count_flops(net, batch=2) * 2 - downsampling_flops(net, 2), rel=1e-12)
    for op in ops:
        results = [fn() for fn in bench_bound.variants(op, torch.float32).values()]
        for r in results[1:]:
            assert torch.allclose(r.reshape(results[0].shape), results[0], rtol=1e-4, atol=1e-4)


def downsampling_flops(net, batch):
    """count_flops' term for the 2x2 depthwise downsampling filters, from the blocks' input shapes."""
    total = 0

    def hook(module, args, out):
        nonlocal total
        x = args[0]
        total += 2 * x.shape[0] * x.shape[1] * (x.shape[2] // 2) * (x.shape[3] // 2) * len(module.resample_taps) ** 2

    hooks = [m.register_forward_hook(hook) for m in net.modules()
             if isinstance(m, edm2.Block) and m.resample_mode == 'down']
    with torch.inference_mode():
        net.prepare()
        net(*edm2.example_inputs(batch, net.img_channels, net.img_resolution, net.label_dim))
    for h in hooks:
        h.remove()
    return total
