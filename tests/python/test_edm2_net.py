"""The EDM2 network: names and shapes of its weights, sizes, equations, TorchScript parity."""

import math

import pytest
import torch
from conftest import TINY_COND, TINY_UNCOND, inputs, make_net

from autoguide_py import edm2

# ----------------------------------------------------------------------------
# Expected state dict, written from the naming rules (reference notes, edm2.md section 4.5),
# independently of the module code.


def expected_state_dict(img_channels, label_dim, mc, mult=(1, 2, 3, 4), num_blocks=3, attn=(16, 8),
                        res=64, cph=64, logvar=128):
    cblock = [mc * m for m in mult]
    cemb = max(cblock)
    keys = [('unet.out_gain', ()), ('unet.emb_fourier.freqs', (cblock[0],)),
            ('unet.emb_fourier.phases', (cblock[0],)), ('unet.emb_noise.weight', (cemb, cblock[0]))]
    if label_dim:
        keys.append(('unet.emb_label.weight', (cemb, label_dim)))

    def block(name, cin, cout, enc, attention):
        p = f'unet.{name}'
        ks = [(f'{p}.emb_gain', ()), (f'{p}.conv_res0.weight', (cout, cout if enc else cin, 3, 3)),
              (f'{p}.emb_linear.weight', (cout, cemb)), (f'{p}.conv_res1.weight', (cout, cout, 3, 3))]
        if cin != cout:
            ks.append((f'{p}.conv_skip.weight', (cout, cin, 1, 1)))
        if attention and cout // cph:
            ks += [(f'{p}.attn_qkv.weight', (3 * cout, cout, 1, 1)), (f'{p}.attn_proj.weight', (cout, cout, 1, 1))]
        return ks

    skips = []
    c = img_channels + 1
    for level, ch in enumerate(cblock):
        r = res >> level
        if level == 0:
            keys.append((f'unet.enc.{r}x{r}_conv.weight', (ch, c, 3, 3)))
            c = ch
        else:
            keys += block(f'enc.{r}x{r}_down', c, c, True, False)
        skips.append(c)
        for i in range(num_blocks):
            keys += block(f'enc.{r}x{r}_block{i}', c, ch, True, r in attn)
            c = ch
            skips.append(c)
    skip_list = list(skips)
    for level in reversed(range(len(cblock))):
        r, ch = res >> level, cblock[level]
        if level == len(cblock) - 1:
            keys += block(f'dec.{r}x{r}_in0', c, c, False, True) + block(f'dec.{r}x{r}_in1', c, c, False, False)
        else:
            keys += block(f'dec.{r}x{r}_up', c, c, False, False)
        for i in range(num_blocks + 1):
            keys += block(f'dec.{r}x{r}_block{i}', c + skips.pop(), ch, False, r in attn)
            c = ch
    keys += [('unet.out_conv.weight', (img_channels, cblock[0], 3, 3)),
             ('logvar_fourier.freqs', (logvar,)), ('logvar_fourier.phases', (logvar,)),
             ('logvar_linear.weight', (1, logvar))]
    return keys, skip_list


def meta_net(**kwargs):
    return edm2.Precond(device='meta', **kwargs)


@pytest.mark.parametrize('size', ['xs', 's'])
@pytest.mark.parametrize('label_dim', [1000, 0])
def test_state_dict_follows_edm2_naming_rules(size, label_dim):
    net = meta_net(img_resolution=64, img_channels=4, label_dim=label_dim, model_channels=edm2.SIZES[size])
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    want, _ = expected_state_dict(4, label_dim, edm2.SIZES[size])
    assert got == want


def test_s_key_counts_skips_and_decoder_inputs():
    cond = meta_net(img_resolution=64, img_channels=4, label_dim=1000, model_channels=192).state_dict()
    uncond = meta_net(img_resolution=64, img_channels=4, label_dim=0, model_channels=192).state_dict()
    assert len(cond) == 203 and len(uncond) == 202
    assert set(cond) - set(uncond) == {'unet.emb_label.weight'}
    _, skips = expected_state_dict(4, 1000, 192)
    assert skips == [192, 192, 192, 192, 192, 384, 384, 384, 384, 576, 576, 576, 576, 768, 768, 768]
    assert cond['unet.dec.8x8_block0.conv_res0.weight'].shape == (768, 1536, 3, 3)
    assert cond['unet.dec.8x8_block3.conv_res0.weight'].shape == (768, 1344, 3, 3)
    assert [cond[f'unet.dec.16x16_block{i}.conv_res0.weight'].shape[1] for i in range(4)] == [1344, 1152, 1152, 960]
    assert cond['unet.dec.64x64_block0.conv_res0.weight'].shape == (192, 576, 3, 3)
    enc_order = [k.split('.')[2] for k in cond if k.startswith('unet.enc.') and k.endswith('emb_gain')]
    assert enc_order[:5] == ['64x64_block0', '64x64_block1', '64x64_block2', '32x32_down', '32x32_block0']


# EDM2 paper Table 6 (conditional ImageNet-512 nets: img_resolution 64, 4 latent channels,
# 1000 classes). The paper counts parameters: logvar_linear is in, the fixed Fourier
# frequencies and phases (buffers) are not.
TABLE6 = {'xxs': 31_309_029, 'xs': 124_713_253, 's': 280_212_837, 'm': 497_807_781,
          'l': 777_498_085, 'xl': 1_119_283_749, 'xxl': 1_523_164_773}


@pytest.mark.parametrize('size', list(TABLE6))
def test_parameter_counts_match_edm2_table6(size):
    net = meta_net(img_resolution=64, img_channels=4, label_dim=1000, model_channels=edm2.SIZES[size])
    assert sum(p.numel() for p in net.parameters()) == TABLE6[size]


def test_unconditional_count_and_what_is_counted():
    net = meta_net(img_resolution=64, img_channels=4, label_dim=0, model_channels=128)
    params = dict(net.named_parameters())
    assert sum(p.numel() for p in params.values()) == 124_201_253
    assert [k for k in params if k.startswith('logvar_')] == ['logvar_linear.weight']
    buffers = {k: t.numel() for k, t in net.named_buffers()}
    assert buffers == {'unet.emb_fourier.freqs': 128, 'unet.emb_fourier.phases': 128,
                       'logvar_fourier.freqs': 128, 'logvar_fourier.phases': 128}


# ----------------------------------------------------------------------------
# The equations.


def test_normalize_gives_unit_rms_per_slice():
    x = torch.randn(5, 7, 3, 3) * 10
    y = edm2.normalize(x, [1, 2, 3])
    rms = y.square().mean(dim=[1, 2, 3]).sqrt()
    assert torch.allclose(rms, torch.ones(5), atol=1e-4)
    want = x / (1e-4 + torch.linalg.vector_norm(x, dim=[1, 2, 3], keepdim=True) / math.sqrt(63))
    assert torch.allclose(y, want, rtol=1e-6)
    pixel = edm2.normalize(x, [1])
    assert torch.allclose(pixel.square().mean(dim=1), torch.ones(5, 3, 3), atol=1e-4)


def test_magnitude_preserving_operations():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(4, 6, generator=gen), torch.randn(4, 6, generator=gen)
    assert torch.allclose(edm2.mp_silu(a), torch.nn.functional.silu(a) / 0.596)
    # lerp rounds differently from the written-out sum: float32 rounding of O(1) values, so an absolute bound too
    # (a relative one alone fails on whichever element lands near zero).
    assert torch.allclose(edm2.mp_sum(a, b, 0.3), (0.7 * a + 0.3 * b) / math.sqrt(0.58), rtol=1e-6, atol=1e-6)
    # mp_cat keeps unit mean square and gives b the share t^2 / ((1-t)^2 + t^2) of it.
    for na, nb, t in [(3, 5, 0.5), (8, 2, 0.3)]:
        y = edm2.mp_cat(torch.ones(1, na), torch.ones(1, nb), t=t)
        assert y.shape == (1, na + nb)
        assert y.square().mean().item() == pytest.approx(1.0, rel=1e-6)
        share = y[:, na:].square().sum() / y.square().sum()
        assert share.item() == pytest.approx(t * t / ((1 - t) ** 2 + t * t), rel=1e-5)


def test_resample_is_box_down_and_nearest_up():
    x = torch.randn(2, 3, 8, 8)
    box = torch.full([3, 1, 2, 2], 0.25)
    assert torch.allclose(edm2.resample(x, box, 'down'), torch.nn.functional.avg_pool2d(x, 2), atol=1e-6)
    up = edm2.resample(x, torch.ones(3, 1, 2, 2), 'up')
    assert torch.equal(up, x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    assert edm2.resample(x, box, 'keep') is x


def test_fourier_features():
    f = edm2.MPFourier(6)
    x = torch.tensor([0.1, -2.0])
    want = math.sqrt(2) * torch.cos(x[:, None] * f.freqs[None] + f.phases[None])
    assert torch.allclose(f(x), want, atol=1e-6)


def test_prepared_weights_have_unit_rows_times_gain():
    net = make_net(TINY_COND)
    net.prepare()
    conv = net.unet.enc['16x16_block0'].conv_res0
    assert torch.allclose(conv.w_eff.flatten(1).norm(dim=1), torch.ones(conv.w_eff.shape[0]), atol=1e-3)
    block = net.unet.enc['16x16_block0']
    lin = block.emb_linear.w_eff
    assert torch.allclose(lin.norm(dim=1), block.emb_gain.abs().expand(lin.shape[0]), rtol=1e-3)
    assert 'w_eff' not in ''.join(net.state_dict())  # prepared weights are not state


def test_fresh_network_is_c_skip_times_x():
    # out_gain starts at zero, so F = 0 and D = c_skip * x (EDM Table 1).
    net = edm2.Precond(**TINY_COND).eval()
    net.prepare()
    x, labels = inputs(TINY_COND)
    sigma = torch.tensor([0.002, 1.0, 80.0])
    c_skip = 0.25 / (sigma ** 2 + 0.25)
    assert torch.allclose(net(x, sigma, labels), x * c_skip.reshape(-1, 1, 1, 1), rtol=1e-6)


def test_forward_prepares_itself_in_eval_mode_and_requires_prepare_in_training():
    net = make_net(TINY_UNCOND)
    x, _ = inputs(TINY_UNCOND)
    with pytest.raises(RuntimeError, match='prepare'):
        net.train()(x, torch.tensor(1.0))
    with torch.no_grad():
        auto = net.eval()(x, torch.tensor(1.0))
        net.prepare()
        assert torch.equal(net(x, torch.tensor(1.0)), auto)


# ----------------------------------------------------------------------------
# Behaviour of forward, and TorchScript parity.


@pytest.fixture(scope='module', params=['cond-fp32', 'cond-fp16', 'uncond-fp16'])
def nets(request):
    config = TINY_COND if request.param.startswith('cond') else TINY_UNCOND
    net = make_net(config)
    if request.param.endswith('fp16'):
        net = net.half()  # raw weights as released pickles store them
    net.prepare()
    scripted = torch.jit.script(net)
    return config, net, scripted


def test_scripted_equals_eager_bitwise(nets):
    config, net, scripted = nets
    x, labels = inputs(config)
    for sigma in [torch.tensor([0.002, 1.0, 80.0]), torch.tensor(0.5), torch.tensor([3.0], dtype=torch.float64)]:
        for lab in [labels, None]:
            want = net(x, sigma, lab)
            assert want.dtype == torch.float32 and want.shape == x.shape
            for _ in range(3):  # the profiling executor optimises after the first runs
                assert torch.equal(scripted(x, sigma, lab), want)


def test_scalar_sigma_broadcasts_over_batch(nets):
    config, net, _ = nets
    x, labels = inputs(config)
    # Not bitwise: a batch-1 embedding may take another matmul kernel than a batch-3 one.
    torch.testing.assert_close(net(x, torch.tensor(2.5), labels), net(x, torch.full([3], 2.5), labels),
                               rtol=1e-5, atol=1e-6)


def test_labels_none_means_zeros_or_ignored(nets):
    config, net, _ = nets
    x, labels = inputs(config)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    if config['label_dim']:
        zeros = torch.zeros(3, config['label_dim'])
        assert torch.equal(net(x, sigma, None), net(x, sigma, zeros))
        assert torch.equal(net(x, sigma, torch.empty(0)), net(x, sigma, zeros))
        assert not torch.equal(net(x, sigma, labels), net(x, sigma, zeros))
    else:
        noise = torch.rand(3, 7)
        assert torch.equal(net(x, sigma, noise), net(x, sigma, None))


def test_attributes_visible_to_torchscript(nets):
    config, net, scripted = nets
    for key in ('img_resolution', 'img_channels', 'label_dim'):
        assert getattr(scripted, key) == config[key]
    assert scripted.sigma_data == 0.5 and scripted.use_fp16 is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_fp16_path():
    net = make_net(TINY_COND).half().cuda()
    net.prepare()
    assert net.unet.enc['16x16_block0'].conv_res0.w_eff.dtype == torch.float16
    assert net.unet.enc['16x16_block0'].emb_linear.w_eff.dtype == torch.float32
    assert net.unet.emb_noise.w_eff.dtype == torch.float32
    scripted = torch.jit.script(net)
    x, labels = inputs(TINY_COND)
    x, labels, sigma = x.cuda(), labels.cuda(), torch.tensor([0.002, 1.0, 80.0]).cuda()
    want = net(x, sigma, labels)
    assert want.dtype == torch.float32
    # CUDA fusers change the last bits; the C++ loader runs without graph optimisation, as here.
    with torch.jit.optimized_execution(False):
        for _ in range(3):
            assert torch.equal(scripted(x, sigma, labels), want)
