"""ImageNet-512 support: the SD VAE decoder (layout, the three weight namings, export, refusals), latent
decoding through `autoguide generate`, the EDM2 presets against the reference table, and get_edm2.sh."""
import collections
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cli import autoguide, requires_bin
from PIL import Image

import model_fixtures
from autoguide_py import vae as V
from autoguide_py.export import export_precond, read_metadata

ROOT = Path(__file__).resolve().parents[2]
EXPORT_VAE = ROOT / 'scripts' / 'export_vae.py'
GET_EDM2 = ROOT / 'scripts' / 'get_edm2.sh'
EDM2_MD = ROOT.parent / 'shared' / 'reference' / 'edm2.md'
needs_bin = requires_bin


def export_cli(*args):
    return subprocess.run([sys.executable, str(EXPORT_VAE), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def assert_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'error: ' in lines[0], r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


# ----------------------------------------------------------------------------
# The decoder's layout: stabilityai/sd-vae-ft-mse, derived here from diffusers' AutoencoderKL rules.


def sd_vae_decoder_layout(latent=4, block_out=(128, 256, 512, 512), layers_per_block=2, out=3):
    keys = collections.OrderedDict()

    def conv(name, cin, cout, k):
        keys[f'{name}.weight'], keys[f'{name}.bias'] = (cout, cin, k, k), (cout,)

    def norm(name, c):
        keys[f'{name}.weight'], keys[f'{name}.bias'] = (c,), (c,)

    def resnet(name, cin, cout):
        norm(f'{name}.norm1', cin)
        conv(f'{name}.conv1', cin, cout, 3)
        norm(f'{name}.norm2', cout)
        conv(f'{name}.conv2', cout, cout, 3)
        if cin != cout:
            conv(f'{name}.conv_shortcut', cin, cout, 1)

    top = block_out[-1]
    conv('post_quant_conv', latent, latent, 1)
    conv('decoder.conv_in', latent, top, 3)
    prev = top
    for i, c in enumerate(reversed(block_out)):  # up_blocks.0 is the deepest level
        for j in range(layers_per_block + 1):
            resnet(f'decoder.up_blocks.{i}.resnets.{j}', prev if j == 0 else c, c)
        if i < len(block_out) - 1:
            conv(f'decoder.up_blocks.{i}.upsamplers.0.conv', c, c, 3)
        prev = c
    norm('decoder.mid_block.attentions.0.group_norm', top)
    for p in ('to_q', 'to_k', 'to_v', 'to_out.0'):
        keys[f'decoder.mid_block.attentions.0.{p}.weight'] = (top, top)
        keys[f'decoder.mid_block.attentions.0.{p}.bias'] = (top,)
    resnet('decoder.mid_block.resnets.0', top, top)
    resnet('decoder.mid_block.resnets.1', top, top)
    norm('decoder.conv_norm_out', block_out[0])
    conv('decoder.conv_out', block_out[0], out, 3)
    return keys


def test_decoder_state_dict_is_the_sd_vae_ft_mse_layout():
    ours = {k: tuple(v.shape) for k, v in V.VaeDecoder().state_dict().items()}
    expected = dict(sd_vae_decoder_layout())
    assert ours == expected
    assert len(ours) == 140
    # The small test configuration follows the same rules.
    small = {k: tuple(v.shape) for k, v in model_fixtures.small_vae().state_dict().items()}
    assert small == dict(sd_vae_decoder_layout(block_out=(32, 32, 64, 64), layers_per_block=1))


# ----------------------------------------------------------------------------
# The three namings, written by this test in the on-disk formats users have.


def to_old_diffusers(sd):
    names = {'to_q': 'query', 'to_k': 'key', 'to_v': 'value', 'to_out.0': 'proj_attn'}
    out = collections.OrderedDict()
    for k, v in sd.items():
        m = re.fullmatch(r'(decoder\.mid_block\.attentions\.0)\.(to_q|to_k|to_v|to_out\.0)\.(\w+)', k)
        out[f'{m.group(1)}.{names[m.group(2)]}.{m.group(3)}' if m else k] = v
    return out


def to_compvis(sd, levels=4):
    """ldm's AutoencoderKL names: up levels counted from full resolution, 1x1-conv attention projections."""
    out = collections.OrderedDict()
    for k, v in sd.items():
        k2 = k.replace('conv_shortcut', 'nin_shortcut').replace('decoder.conv_norm_out', 'decoder.norm_out')
        m = re.fullmatch(r'decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)', k2)
        if m:
            level = levels - 1 - int(m.group(1))
            k2 = (f'decoder.up.{level}.block.{m.group(3)}.{m.group(4)}' if m.group(2) == 'resnets'
                  else f'decoder.up.{level}.upsample.{m.group(4)}')
        k2 = re.sub(r'decoder\.mid_block\.resnets\.(\d)', lambda m: f'decoder.mid.block_{int(m.group(1)) + 1}', k2)
        m = re.fullmatch(r'decoder\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(\w+)', k2)
        if m:
            part = {'group_norm': 'norm', 'to_q': 'q', 'to_k': 'k', 'to_v': 'v', 'to_out.0': 'proj_out'}[m.group(1)]
            k2 = f'decoder.mid.attn_1.{part}.{m.group(2)}'
            if part != 'norm' and m.group(2) == 'weight':
                v = v[:, :, None, None]
        out[k2] = v
    return out


def with_encoder_half(sd):
    """Real files also hold the encoder, quant_conv and (CompVis) loss weights; the decoder ignores them."""
    out = collections.OrderedDict(sd)
    out['encoder.conv_in.weight'] = torch.randn(32, 3, 3, 3)
    out['quant_conv.weight'] = torch.randn(8, 8, 1, 1)
    out['loss.logvar'] = torch.zeros([])
    return out


_ST_DTYPES = {'F32': (torch.float32, torch.int32), 'F16': (torch.float16, torch.int16),
              'BF16': (torch.bfloat16, torch.int16), 'I64': (torch.int64, torch.int64)}


def write_safetensors(path, tensors, dtype='F32'):
    """The safetensors format from its specification: u64 LE header size, JSON header, raw LE data."""
    assert sys.byteorder == 'little'
    header, blobs, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in tensors.items():
        torch_dtype, bits = _ST_DTYPES[dtype]
        raw = t.to(torch_dtype).contiguous().view(bits).numpy().tobytes()  # this host is little-endian
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    Path(path).write_bytes(struct.pack('<Q', len(text)) + text + b''.join(blobs))


@pytest.fixture(scope='module')
def weights():
    """Small-config decoder weights that fp16 and bf16 hold exactly, so every format must give equal outputs."""
    vae = model_fixtures.small_vae()
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_((p.sign() * p.abs().clamp(1e-3, 100)).bfloat16().float())
    return vae, collections.OrderedDict((k, v.clone()) for k, v in vae.state_dict().items())


def latents(n=2, h=4, w=5):
    return torch.randn([n, 4, h, w], generator=torch.Generator().manual_seed(3))


FORMATS = {
    # name: (scheme, file name, writer)
    'diffusers-safetensors': ('diffusers', 'diffusion_pytorch_model.safetensors',
                              lambda p, sd: write_safetensors(p, with_encoder_half(sd))),
    'diffusers-fp16-safetensors': ('diffusers', 'diffusion_pytorch_model.fp16.safetensors',
                                   lambda p, sd: write_safetensors(p, with_encoder_half(sd), 'F16')),
    'diffusers-bin': ('diffusers', 'diffusion_pytorch_model.bin', lambda p, sd: torch.save(with_encoder_half(sd), p)),
    'diffusers-old-bin': ('diffusers', 'diffusion_pytorch_model.bin',
                          lambda p, sd: torch.save(with_encoder_half(to_old_diffusers(sd)), p)),
    'diffusers-old-safetensors': ('diffusers', 'diffusion_pytorch_model.safetensors',
                                  lambda p, sd: write_safetensors(p, to_old_diffusers(sd), 'BF16')),
    'compvis-safetensors': ('compvis', 'vae-ft-mse-840000-ema-pruned.safetensors',
                            lambda p, sd: write_safetensors(p, with_encoder_half(to_compvis(sd)))),
    # A Lightning checkpoint: the state dict inside, next to plain numbers (floats need our restricted reader
    # on torch 1.13, whose weights-only unpickler cannot read them).
    'compvis-ckpt': ('compvis', 'vae-ft-mse-840000-ema-pruned.ckpt',
                     lambda p, sd: torch.save({'state_dict': with_encoder_half(to_compvis(sd)), 'global_step': 840000,
                                               'epoch': 3, 'lr': 4.5e-6}, p)),
}


@pytest.mark.parametrize('fmt', FORMATS)
def test_every_naming_and_format_loads_into_the_same_module(fmt, weights, tmp_path):
    vae, sd = weights
    scheme, name, write = FORMATS[fmt]
    path = tmp_path / name
    write(path, sd)
    loaded, found = V.load_vae(str(path))
    assert found == scheme
    assert loaded.config == vae.config  # inferred from the weights' shapes
    z = latents()
    with torch.no_grad():
        assert torch.equal(loaded(z), vae(z))


def reference_decode(sd, z, levels=4, groups=32):
    """CompVis ldm's Decoder written out as functions on its own state-dict names, independent of our modules."""
    F = torch.nn.functional

    def conv(x, name, padding=1):
        return F.conv2d(x, sd[f'{name}.weight'], sd[f'{name}.bias'], padding=padding)

    def norm(x, name):
        return F.group_norm(x, groups, sd[f'{name}.weight'], sd[f'{name}.bias'], eps=1e-6)

    def resnet(x, name):
        h = conv(F.silu(norm(x, f'{name}.norm1')), f'{name}.conv1')
        h = conv(F.silu(norm(h, f'{name}.norm2')), f'{name}.conv2')
        return (conv(x, f'{name}.nin_shortcut', 0) if f'{name}.nin_shortcut.weight' in sd else x) + h

    def attention(x, name):
        h = norm(x, f'{name}.norm')
        q, k, v = (conv(h, f'{name}.{p}', 0) for p in 'qkv')
        b, c, hh, ww = q.shape
        w = torch.bmm(q.reshape(b, c, hh * ww).permute(0, 2, 1), k.reshape(b, c, hh * ww)) * c ** -0.5
        w = torch.softmax(w, dim=2)
        h = torch.bmm(v.reshape(b, c, hh * ww), w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + conv(h, f'{name}.proj_out', 0)

    x = conv(conv(z, 'post_quant_conv', 0), 'decoder.conv_in')
    x = resnet(attention(resnet(x, 'decoder.mid.block_1'), 'decoder.mid.attn_1'), 'decoder.mid.block_2')
    for level in reversed(range(levels)):
        j = 0
        while f'decoder.up.{level}.block.{j}.conv1.weight' in sd:
            x = resnet(x, f'decoder.up.{level}.block.{j}')
            j += 1
        if level != 0:
            x = conv(F.interpolate(x, scale_factor=2.0, mode='nearest'), f'decoder.up.{level}.upsample.conv')
    return conv(F.silu(norm(x, 'decoder.norm_out')), 'decoder.conv_out')


def test_decoder_computes_what_ldm_decoder_computes(weights):
    vae, sd = weights
    z = latents(h=6, w=5)
    with torch.no_grad():
        want, got = reference_decode(to_compvis(sd), z), vae(z)
    assert got.shape == (2, 3, 48, 40)
    assert (want - got).abs().max() < 1e-5 * want.abs().max()


def test_compvis_levels_really_are_reversed(weights, tmp_path):
    # Equal channel counts at the two deepest levels would hide a wrong level order from the shape checks.
    vae, sd = weights
    bad = collections.OrderedDict((k.replace('decoder.up.3.', 'decoder.up.X.').replace('decoder.up.2.', 'decoder.up.3.')
                                   .replace('decoder.up.X.', 'decoder.up.2.'), v) for k, v in to_compvis(sd).items())
    write_safetensors(tmp_path / 'swapped.safetensors', bad)
    loaded, _ = V.load_vae(str(tmp_path / 'swapped.safetensors'))
    with torch.no_grad():
        assert not torch.allclose(loaded(latents()), vae(latents()))


def test_export_cli_writes_metadata_and_the_same_decoder(weights, tmp_path):
    vae, sd = weights
    src = tmp_path / 'vae-ft-mse-840000-ema-pruned.ckpt'
    FORMATS['compvis-ckpt'][2](src, sd)
    out = tmp_path / 'vae.pt'
    r = export_cli(src, out, '--verify')
    assert r.returncode == 0, r.stderr
    meta = read_metadata(str(out))
    from autoguide_py.export import sha256_file
    assert meta['format_version'] == 1 and meta['kind'] == 'vae'
    assert meta['latent_channels'] == 4 and meta['scale_factor'] == 8
    assert meta['source_file'] == src.name and meta['source_sha256'] == sha256_file(str(src))
    assert meta['exporter'].startswith('autoguide ')
    loaded = torch.jit.load(str(out))
    z = latents()
    with torch.no_grad():
        assert torch.equal(loaded(z), vae(z))
    assert sorted(os.listdir(tmp_path)) == sorted([src.name, out.name])


def test_export_refuses_missing_and_unknown_keys_listing_them(weights, tmp_path):
    _, sd = weights
    bad = collections.OrderedDict(sd)
    del bad['decoder.conv_out.bias']
    bad['decoder.mid_block.attentions.0.extra.weight'] = torch.zeros(3)
    write_safetensors(tmp_path / 'bad.safetensors', bad)
    r = export_cli(tmp_path / 'bad.safetensors', tmp_path / 'vae.pt')
    assert_one_line_error(r, 'missing decoder.conv_out.bias', 'unknown decoder.mid_block.attentions.0.extra.weight')
    assert sorted(os.listdir(tmp_path)) == ['bad.safetensors']


@pytest.mark.parametrize('case', ['truncated', 'int64', 'not-a-file', 'empty-dict', 'shape'])
def test_export_refuses_bad_files(case, weights, tmp_path):
    _, sd = weights
    src = tmp_path / 'in.safetensors'
    if case == 'truncated':
        write_safetensors(src, sd)
        src.write_bytes(src.read_bytes()[:-100])
        expect = 'outside the'
    elif case == 'int64':
        write_safetensors(src, {'post_quant_conv.bias': torch.zeros(4)}, 'I64')
        expect = "dtype 'I64'"
    elif case == 'not-a-file':
        src.write_bytes(b'hello world, not weights')
        expect = 'in.safetensors'
    elif case == 'empty-dict':
        src = tmp_path / 'in.bin'
        torch.save({}, src)
        expect = 'holds no state dict'
    else:
        bad = collections.OrderedDict(sd)
        bad['decoder.conv_in.bias'] = torch.zeros(7)
        write_safetensors(src, bad)
        expect = 'decoder.conv_in.bias (7,)'
    r = export_cli(src, tmp_path / 'vae.pt')
    assert_one_line_error(r, expect)
    assert not (tmp_path / 'vae.pt').exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith('.')] == []


class _Evil:
    def __reduce__(self):
        return (os.system, (f'touch {_Evil.marker}',))


def test_export_refuses_pickles_with_code_and_runs_nothing(weights, tmp_path):
    _, sd = weights
    _Evil.marker = tmp_path / 'pwned'
    src = tmp_path / 'vae.ckpt'
    torch.save({'state_dict': sd, 'callback': _Evil()}, src)
    assert zipfile.is_zipfile(src)
    r = export_cli(src, tmp_path / 'vae.pt')
    assert_one_line_error(r, 'refusing to load vae.ckpt')
    assert not _Evil.marker.exists() and not (tmp_path / 'vae.pt').exists()
    # A raw pickle (not torch.save) is refused as well.
    raw = tmp_path / 'raw.bin'
    raw.write_bytes(pickle.dumps(_Evil()))
    r = export_cli(raw, tmp_path / 'vae.pt')
    assert r.returncode == 2 and not _Evil.marker.exists(), r.stderr


# ----------------------------------------------------------------------------
# `autoguide generate` on a latent net: decoding, refusals, presets.


@pytest.fixture(scope='module')
def latent_models(tmp_path_factory):
    d = tmp_path_factory.mktemp('latent')
    torch.set_num_threads(1)
    net, meta = model_fixtures.latent_net()
    export_precond(net, str(d / 'latent.pt'), meta)
    vae = model_fixtures.small_vae()
    V.export_vae(vae, str(d / 'vae.pt'))
    V.export_vae(model_fixtures.small_vae(latent_channels=3), str(d / 'vae3.pt'))
    # A stand-in VAE whose output is exact float arithmetic, upsampled 8x, to check the pixel formula exactly.
    linear = torch.jit.script(LinearVae())
    torch.jit.save(linear, str(d / 'linear.pt'), _extra_files={'autoguide.json': json.dumps(
        {'format_version': 1, 'kind': 'vae', 'latent_channels': 4, 'scale_factor': 8})})
    return d, vae


class LinearVae(torch.nn.Module):
    def forward(self, z):
        y = z[:, 0:3] * 0.0625 + z[:, 3:4] * 0.03125 + 0.5
        return y.repeat_interleave(8, 2).repeat_interleave(8, 3)


def read_pngs(folder, seeds):
    return np.stack([np.asarray(Image.open(folder / f'{s:06d}.png')).transpose(2, 0, 1) for s in seeds])


def edm2_unscale(z):
    """StabilityVAEEncoder.decode's first step, in numpy float32: (z - bias) / scale."""
    z = z.astype(np.float32)
    return (z - model_fixtures.VAE_BIAS.reshape(1, 4, 1, 1)) / model_fixtures.VAE_SCALE.reshape(1, 4, 1, 1)


@needs_bin
def test_generate_decodes_latents_with_edm2s_formula_exactly(latent_models, tmp_path):
    d, _ = latent_models
    seeds = [3, 0, 11, 7, 5]
    r = autoguide('generate', '--net', d / 'latent.pt', '--vae', d / 'linear.pt', '--seeds', '3,0,11,7,5',
                  '--steps', 6, '--batch', 3, '--vae-batch', 2, '--npy', tmp_path / 'z.npy', '--outdir',
                  tmp_path / 'out', '--quiet')
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / 'z.npy')
    assert z.shape == (5, 4, 8, 8)
    x = edm2_unscale(z)
    y = x[:, 0:3] * np.float32(0.0625) + x[:, 3:4] * np.float32(0.03125) + np.float32(0.5)
    v = np.clip(y, 0, 1) * np.float32(255)
    expected = v.astype(np.uint8).repeat(8, axis=2).repeat(8, axis=3)  # astype truncates, as EDM2's .to(uint8)
    ours = read_pngs(tmp_path / 'out', seeds)
    assert ours.shape == (5, 3, 64, 64)
    assert np.array_equal(ours, expected)
    # The latents span the clamp range and the truncation matters, so the formula is really under test.
    assert 0.3 < ((y > 0) & (y < 1)).mean() < 1 and (np.rint(v) != np.floor(v)).sum() > 50
    assert (y <= 0).any() or (y >= 1).any()


@needs_bin
def test_generate_with_small_vae_writes_8x_pngs_equal_to_python_decode(latent_models, tmp_path):
    d, vae = latent_models
    r = autoguide('generate', '--net', d / 'latent.pt', '--vae', d / 'vae.pt', '--seeds', '0-3', '--steps', 6,
                  '--npy', tmp_path / 'z.npy', '--outdir', tmp_path / 'out', '--grid', tmp_path / 'grid.png',
                  '--quiet')
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / 'z.npy')
    with torch.no_grad():
        images = vae(torch.from_numpy(edm2_unscale(z)))
    expected = images.clamp(0, 1).mul(255).to(torch.uint8).numpy()
    ours = read_pngs(tmp_path / 'out', range(4))
    assert ours.shape == (4, 3, 64, 64)  # 8x the 8x8 latents
    diff = np.abs(ours.astype(int) - expected.astype(int))
    # Same TorchScript graph in C++ and Python: floats agree to ~1e-6, so only values a hair from an
    # integer boundary may truncate differently.
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    grid = Image.open(tmp_path / 'grid.png')
    assert grid.mode == 'RGB' and min(grid.size) >= 2 * 64  # 2x2 images of 64x64
    manifest = json.loads((tmp_path / 'out' / 'manifest.json').read_text())
    assert manifest['vae'] == 'vae.pt' and manifest['vae_batch'] == 4 and manifest['vae_dtype'] == 'fp32'


@needs_bin
def test_generate_vae_bf16_is_close_to_fp32(latent_models, tmp_path):
    d, _ = latent_models
    common = ['generate', '--net', d / 'latent.pt', '--vae', d / 'vae.pt', '--seeds', '0-1', '--steps', 4, '--quiet']
    assert autoguide(*common, '--outdir', tmp_path / 'a').returncode == 0
    r = autoguide(*common, '--outdir', tmp_path / 'b', '--vae-dtype', 'bf16')
    assert r.returncode == 0, r.stderr
    a, b = read_pngs(tmp_path / 'a', range(2)).astype(int), read_pngs(tmp_path / 'b', range(2)).astype(int)
    assert 0 < np.abs(a - b).mean() < 6


@needs_bin
def test_latent_net_without_vae_is_refused_unless_only_latents_are_asked(latent_models, tmp_path):
    d, _ = latent_models
    r = autoguide('generate', '--net', d / 'latent.pt', '--seeds', '0-1', '--steps', 4, '--outdir', tmp_path / 'out')
    assert_one_line_error(r, 'SD-VAE latents', '--vae', 'scripts/export_vae.py')
    assert not (tmp_path / 'out').exists()
    r = autoguide('generate', '--net', d / 'latent.pt', '--seeds', '0-1', '--steps', 4, '--npy', tmp_path / 'z.npy',
                  '--quiet')
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / 'z.npy').shape == (2, 4, 8, 8)


@needs_bin
@pytest.mark.parametrize('case', ['channels', 'denoiser', 'rgb-net', 'batch', 'dtype'])
def test_generate_refuses_bad_vae_input(case, latent_models, tmp_path):
    d, _ = latent_models
    net, vae, extra, expect = d / 'latent.pt', d / 'vae.pt', [], []
    if case == 'channels':
        vae, expect = d / 'vae3.pt', ['3-channel latents', '4 channels']
    elif case == 'denoiser':
        vae, expect = d / 'latent.pt', ['is not a VAE decoder']
    elif case == 'rgb-net':
        net = tmp_path / 'rgb.pt'
        export_precond(model_fixtures.random_net(0, 16, 1), str(net))
        expect = ['drop --vae']
    elif case == 'batch':
        extra, expect = ['--vae-batch', '0'], ['--vae-batch must be at least 1 (got 0)']
    else:
        extra, expect = ['--vae-dtype', 'fp64'], ["unknown --vae-dtype 'fp64'"]
    r = autoguide('generate', '--net', net, '--vae', vae, '--seeds', '0', '--steps', 2, '--outdir', tmp_path / 'out',
                  *extra)
    assert_one_line_error(r, *expect)
    assert not (tmp_path / 'out').exists()


@needs_bin
def test_vae_given_as_the_net_is_named(latent_models, tmp_path):
    d, _ = latent_models
    r = autoguide('generate', '--net', d / 'vae.pt', '--seeds', '0', '--npy', tmp_path / 'z.npy')
    assert_one_line_error(r, 'is a VAE decoder, not a diffusion net; give it as --vae')


@needs_bin
def test_preset_resolves_the_vae_from_the_models_folder(latent_models, tmp_path):
    d, _ = latent_models
    configs, models = tmp_path / 'configs', tmp_path / 'models'
    configs.mkdir()
    models.mkdir()
    (configs / 'test.json').write_text(json.dumps({'presets': {'tiny-latent': {
        'net': 'tiny-latent.pt', 'gnet': None, 'guidance': 1.0, 'reported': {}, 'vae': 'tiny-vae.pt'}}}))
    os.symlink(d / 'latent.pt', models / 'tiny-latent.pt')
    env = dict(os.environ, AUTOGUIDE_CONFIGS=str(configs))
    r = autoguide('generate', '--preset', 'tiny-latent', '--models', models, '--seeds', '0', '--steps', 2,
                  '--outdir', tmp_path / 'out', env=env)
    assert_one_line_error(r, f'{models}/tiny-vae.pt (scripts/export_vae.py diffusion_pytorch_model.safetensors '
                             f'{models}/tiny-vae.pt)', 'scripts/get_edm2.sh tiny-latent')
    assert f'{models}/tiny-latent.pt' not in r.stderr  # present files are not listed
    # Latents alone need no VAE.
    r = autoguide('generate', '--preset', 'tiny-latent', '--models', models, '--seeds', '0', '--steps', 2,
                  '--npy', tmp_path / 'z.npy', '--quiet', env=env)
    assert r.returncode == 0, r.stderr
    os.symlink(d / 'vae.pt', models / 'tiny-vae.pt')
    r = autoguide('generate', '--preset', 'tiny-latent', '--models', models, '--seeds', '0', '--steps', 2,
                  '--outdir', tmp_path / 'out', '--quiet', env=env)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / 'out' / '000000.png').size == (64, 64)
    manifest = json.loads((tmp_path / 'out' / 'manifest.json').read_text())
    assert manifest['vae_file'] == str(models / 'tiny-vae.pt') and manifest['preset'] == 'tiny-latent'


@needs_bin
def test_edm2_preset_lists_every_missing_file_with_its_command(tmp_path):
    r = autoguide('generate', '--preset', 'edm2-img512-s-autog-fid', '--models', tmp_path, '--seeds', '0',
                  '--outdir', tmp_path / 'out')
    m = str(tmp_path)
    assert_one_line_error(
        r,
        f'{m}/edm2-img512-s-2147483-0.070.pt (scripts/export_edm2.py edm2-img512-s-2147483-0.070.pkl '
        f'{m}/edm2-img512-s-2147483-0.070.pt)',
        f'{m}/edm2-img512-xs-0134217-0.125.pt (scripts/export_edm2.py edm2-img512-xs-0134217-0.125.pkl',
        f'{m}/sd-vae-ft-mse.pt (scripts/export_vae.py diffusion_pytorch_model.safetensors {m}/sd-vae-ft-mse.pt)',
        'scripts/get_edm2.sh edm2-img512-s-autog-fid')


# ----------------------------------------------------------------------------
# configs/edm2.json against the reference's preset table, and the download script.


def reference_presets():
    text = EDM2_MD.read_text()
    section = text[text.index('### 2.1 Presets'):text.index('### 2.2')]
    presets = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if not line.startswith('| edm2-'):
            continue
        name = cells[0]
        if len(cells) == 3:
            net, gnet, guidance, comment = cells[1], None, 1.0, cells[2]
        else:
            net, gnet, guidance, comment = cells[1], cells[2], float(cells[3]), cells[4]
        # The CFG table drops the common 'edm2-img512-' prefix of the file names.
        net, gnet = [n if n is None or n.startswith('edm2-') else 'edm2-img512-' + n for n in (net, gnet)]
        metric, value = re.fullmatch(r'(fid|fd_dinov2) = ([\d.]+)', comment).groups()
        presets[name] = dict(net=net + '.pt', gnet=gnet and gnet + '.pt', guidance=guidance,
                             reported={metric: float(value)},
                             vae='sd-vae-ft-mse.pt' if name.startswith('edm2-img512-') else None)
    return presets


@pytest.mark.skipif(not EDM2_MD.exists(), reason='the reference notes (../shared/reference/edm2.md) are not here')
def test_presets_file_matches_the_reference_table_entry_by_entry():
    expected = reference_presets()
    assert len(expected) == 36
    assert sum('-guid-' in n for n in expected) == 12 and sum('-autog-' in n for n in expected) == 8
    ours = json.loads((ROOT / 'configs' / 'edm2.json').read_text())['presets']
    assert list(ours) == list(expected)
    for name, want in expected.items():
        got = ours[name]
        assert {k: got.get(k) for k in want} == want, name


@pytest.mark.skipif(not EDM2_MD.exists(), reason='the reference notes are not here')
@needs_bin
def test_presets_command_agrees_with_the_table():
    r = autoguide('presets', '--json')
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    for name, want in reference_presets().items():
        assert listed[name]['net'] == want['net'] and listed[name]['gnet'] == want['gnet'], name
        assert listed[name]['guidance'] == want['guidance'], name


def test_get_edm2_dry_run_prints_every_url_and_target(tmp_path):
    models = tmp_path / 'models'
    names = ['edm2-img512-s-autog-fid', 'edm2-img512-xs-guid-fid', 'edm2-img64-s-fid', 'edm2-img512-s-autog-fid']
    r = subprocess.run(['bash', str(GET_EDM2), '--dry-run', '--models', str(models), *names],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    presets = json.loads((ROOT / 'configs' / 'edm2.json').read_text())['presets']
    files = []
    for n in names:
        for f in (presets[n]['net'], presets[n]['gnet']):
            if f and f not in files:
                files.append(f)
    lines = r.stdout.splitlines()
    site = 'https://nvlabs-fi-cdn.nvidia.com/edm2/posthoc-reconstructions'
    for f in files:
        pkl = f[:-3] + '.pkl'
        assert f'download {site}/{pkl} -> {models}/downloads/{pkl}' in lines, f
        assert any(l.startswith(f'convert  {models}/downloads/{pkl} -> {models}/{f} ') for l in lines), f
    vae_url = 'https://huggingface.co/stabilityai/sd-vae-ft-mse/resolve/main/diffusion_pytorch_model.safetensors'
    assert sum(l.startswith(f'download {vae_url} -> ') for l in lines) == 1  # once, though three presets need it
    assert any(l.startswith('convert ') and l.endswith(f'-> {models}/sd-vae-ft-mse.pt (scripts/export_vae.py)')
               for l in lines)
    assert len(lines) == 2 * (len(files) + 1)
    assert not models.exists()  # a dry run changes nothing
    # Files already converted are not fetched again; unknown presets are refused.
    models.mkdir()
    (models / 'sd-vae-ft-mse.pt').write_bytes(b'')
    r = subprocess.run(['bash', str(GET_EDM2), '--dry-run', '--models', str(models), 'edm2-img512-xs-fid'],
                       capture_output=True, text=True, timeout=60)
    assert f'have     {models}/sd-vae-ft-mse.pt' in r.stdout and vae_url not in r.stdout
    r = subprocess.run(['bash', str(GET_EDM2), '--dry-run', 'edm2-img512-nope'], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and 'unknown preset edm2-img512-nope' in r.stderr


def test_get_edm2_all_covers_every_file_of_the_presets():
    r = subprocess.run(['bash', str(GET_EDM2), '--dry-run', '--models', '/nonexistent/m', 'all'],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    presets = json.loads((ROOT / 'configs' / 'edm2.json').read_text())['presets']
    needed = {f for p in presets.values() for f in (p['net'], p['gnet']) if f}
    targets = {m.group(1) for m in re.finditer(r'-> /nonexistent/m/(\S+\.pt)', r.stdout)}
    assert targets == needed | {'sd-vae-ft-mse.pt'}
