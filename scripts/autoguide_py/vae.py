"""The Stable Diffusion VAE decoder (stabilityai/sd-vae-ft-mse) that EDM2's ImageNet-512 latents need.

EDM2's StabilityVAEEncoder decodes with diffusers' `AutoencoderKL.decode`: `post_quant_conv`
(1x1) and then the Decoder. This is our own implementation of exactly that path, as modules
that torch.jit.script accepts, with diffusers' current parameter names, so that the weights
of every file users have can be mapped onto it: diffusers `diffusion_pytorch_model`
(.safetensors or .bin, attention named to_q/to_k/to_v/to_out.0 or, before diffusers 0.14,
query/key/value/proj_attn) and the original CompVis `vae-ft-mse-840000-ema-pruned`
(.safetensors or .ckpt). The encoder half of those files is not needed and not read.

Input: latents in the SD-VAE space (EDM2 has already undone its own scale and bias).
Output: images in about [0, 1], because EDM2 encoded [0, 1] images, not SD's [-1, 1].
The exported file's format (kind "vae"): docs/model_format.md.
"""

import collections
import copy
import json
import os
import re
import sys
from typing import List

import torch
from torch import Tensor

from .errors import ExportError
from .export import (EXPORTER, FORMAT_VERSION, METADATA_FILE, CliParser, describe_names, format_mib,
                     run_reporting_errors, save_model_file, sha256_file)
from .safetensors import is_safetensors, load_safetensors
from .zip_checkpoint import load_torch_checkpoint

# stabilityai/sd-vae-ft-mse config.json (and CompVis kl-f8: ch 128, ch_mult 1,2,4,4, num_res_blocks 2).
SD_VAE = dict(latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
              norm_num_groups=32, out_channels=3)
EPS = 1e-6


# ----------------------------------------------------------------------------
# Architecture (diffusers AutoencoderKL: post_quant_conv + Decoder).


class ResnetBlock(torch.nn.Module):
    """GroupNorm-SiLU-conv twice, plus a 1x1 shortcut where the channel count changes (no time embedding)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(groups, in_channels, eps=EPS)
        self.conv1 = torch.nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = torch.nn.GroupNorm(groups, out_channels, eps=EPS)
        self.conv2 = torch.nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = torch.nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(torch.nn.functional.silu(self.norm1(x)))
        h = self.conv2(torch.nn.functional.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(torch.nn.Module):
    """Single-head self-attention over all positions, residual (the VAE's only attention, in the mid block)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = torch.nn.GroupNorm(groups, channels, eps=EPS)
        self.to_q = torch.nn.Linear(channels, channels)
        self.to_k = torch.nn.Linear(channels, channels)
        self.to_v = torch.nn.Linear(channels, channels)
        self.to_out = torch.nn.ModuleList([torch.nn.Linear(channels, channels)])  # diffusers' to_out.1 is dropout
        self.scale = channels ** -0.5

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        t = self.group_norm(x).flatten(2).transpose(1, 2)  # [N, HW, C]
        q = self.to_q(t) * self.scale  # scaling q costs HW*C, scaling the scores HW*HW
        k = self.to_k(t)
        v = self.to_v(t)
        # Softmax in float32 whatever the weights are, as diffusers' upcast_softmax does.
        a = torch.softmax(torch.bmm(q, k.transpose(1, 2)).float(), dim=-1).to(v.dtype)
        out = torch.bmm(a, v)
        for proj in self.to_out:
            out = proj(out)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class MidBlock(torch.nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.attentions = torch.nn.ModuleList([Attention(channels, groups)])
        self.resnets = torch.nn.ModuleList([ResnetBlock(channels, channels, groups),
                                            ResnetBlock(channels, channels, groups)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.resnets[0](x)
        for attn in self.attentions:
            x = attn(x)
        return self.resnets[1](x)


class Upsample(torch.nn.Module):
    """Nearest-neighbour 2x, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode='nearest'))


class UpBlock(torch.nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_layers: int, groups: int, upsample: bool):
        super().__init__()
        self.resnets = torch.nn.ModuleList([ResnetBlock(in_channels if i == 0 else out_channels, out_channels, groups)
                                            for i in range(num_layers)])
        self.upsamplers = torch.nn.ModuleList([Upsample(out_channels)] if upsample else [])

    def forward(self, x: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for up in self.upsamplers:
            x = up(x)
        return x


class Decoder(torch.nn.Module):
    def __init__(self, latent_channels: int, block_out_channels: List[int], layers_per_block: int,
                 norm_num_groups: int, out_channels: int):
        super().__init__()
        channels = list(reversed(block_out_channels))  # decoding runs from the deepest level up
        self.conv_in = torch.nn.Conv2d(latent_channels, channels[0], 3, padding=1)
        # Registered in diffusers' order (up_blocks before mid_block), so state dicts list keys alike.
        self.up_blocks = torch.nn.ModuleList([
            UpBlock(channels[max(i - 1, 0)], c, layers_per_block + 1, norm_num_groups, upsample=i < len(channels) - 1)
            for i, c in enumerate(channels)])
        self.mid_block = MidBlock(channels[0], norm_num_groups)
        self.conv_norm_out = torch.nn.GroupNorm(norm_num_groups, channels[-1], eps=EPS)
        self.conv_out = torch.nn.Conv2d(channels[-1], out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.mid_block(self.conv_in(x))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(torch.nn.functional.silu(self.conv_norm_out(x)))


class VaeDecoder(torch.nn.Module):
    """forward(z) = AutoencoderKL.decode(z).sample: SD-VAE latents [N,4,H,W] -> images [N,3,8H,8W] in float32.

    Runs in the dtype of its weights (cast the module to run in bf16); input and output stay float32
    so that callers need not know.
    """

    def __init__(self, latent_channels: int = 4, block_out_channels=(128, 256, 512, 512), layers_per_block: int = 2,
                 norm_num_groups: int = 32, out_channels: int = 3):
        super().__init__()
        self.config = dict(latent_channels=latent_channels, block_out_channels=list(block_out_channels),
                           layers_per_block=layers_per_block, norm_num_groups=norm_num_groups,
                           out_channels=out_channels)
        self.latent_channels = latent_channels
        self.scale_factor = 2 ** (len(block_out_channels) - 1)
        self.post_quant_conv = torch.nn.Conv2d(latent_channels, latent_channels, 1)
        self.decoder = Decoder(latent_channels, list(block_out_channels), layers_per_block, norm_num_groups,
                               out_channels)

    __jit_ignored_attributes__ = ['config']

    def forward(self, z: Tensor) -> Tensor:
        z = z.to(self.post_quant_conv.weight.dtype)
        return self.decoder(self.post_quant_conv(z)).float()


# ----------------------------------------------------------------------------
# Weight files -> our (diffusers) names.

_IGNORED_PREFIXES = ('encoder.', 'quant_conv.', 'loss.')  # the encoder half, and CompVis' training loss
_OLD_ATTENTION = {'query': 'to_q', 'key': 'to_k', 'value': 'to_v', 'proj_attn': 'to_out.0'}
_COMPVIS_ATTENTION = {'norm': 'group_norm', 'q': 'to_q', 'k': 'to_k', 'v': 'to_v', 'proj_out': 'to_out.0'}
_COMPVIS_RESNET = {'nin_shortcut': 'conv_shortcut'}


def _compvis_name(key, num_levels):
    """decoder.up.<level> counts from the full-resolution level; diffusers' up_blocks count from the deepest."""
    m = re.fullmatch(r'decoder\.mid\.block_([12])\.(\w+)\.(weight|bias)', key)
    if m:
        part = _COMPVIS_RESNET.get(m.group(2), m.group(2))
        return f'decoder.mid_block.resnets.{int(m.group(1)) - 1}.{part}.{m.group(3)}'
    m = re.fullmatch(r'decoder\.mid\.attn_1\.(\w+)\.(weight|bias)', key)
    if m and m.group(1) in _COMPVIS_ATTENTION:
        return f'decoder.mid_block.attentions.0.{_COMPVIS_ATTENTION[m.group(1)]}.{m.group(2)}'
    m = re.fullmatch(r'decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)', key)
    if m:
        part = _COMPVIS_RESNET.get(m.group(3), m.group(3))
        return f'decoder.up_blocks.{num_levels - 1 - int(m.group(1))}.resnets.{m.group(2)}.{part}.{m.group(4)}'
    m = re.fullmatch(r'decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)', key)
    if m:
        return f'decoder.up_blocks.{num_levels - 1 - int(m.group(1))}.upsamplers.0.conv.{m.group(2)}'
    m = re.fullmatch(r'decoder\.norm_out\.(weight|bias)', key)
    if m:
        return f'decoder.conv_norm_out.{m.group(1)}'
    return key  # conv_in, conv_out, post_quant_conv: same names


def _diffusers_name(key):
    m = re.fullmatch(r'(decoder\.mid_block\.attentions\.0)\.(\w+)\.(weight|bias)', key)
    if m and m.group(2) in _OLD_ATTENTION:
        return f'{m.group(1)}.{_OLD_ATTENTION[m.group(2)]}.{m.group(3)}'
    return key


def naming_scheme(keys):
    """'compvis' (decoder.mid.attn_1.q ...) or 'diffusers' (decoder.mid_block... in either attention naming)."""
    return 'compvis' if any(k.startswith(('decoder.mid.', 'decoder.up.')) for k in keys) else 'diffusers'


def convert_state_dict(tensors):
    """Map a VAE state dict in any supported naming onto VaeDecoder's names.

    Returns (state_dict, scheme); the encoder half is dropped. Keys that are neither ours nor a known
    part of an SD autoencoder stay in the result, so that the caller can name them.
    """
    keys = list(tensors)
    scheme = naming_scheme(keys)
    levels = 1 + max((int(m.group(1)) for k in keys for m in [re.match(r'decoder\.up\.(\d+)\.', k)] if m), default=0)
    out = collections.OrderedDict()
    duplicates = []
    for key, t in tensors.items():
        if key.startswith(_IGNORED_PREFIXES):
            continue
        new = _compvis_name(key, levels) if scheme == 'compvis' else _diffusers_name(key)
        # CompVis stores the attention projections as 1x1 convolutions.
        if scheme == 'compvis' and re.fullmatch(r'decoder\.mid_block\.attentions\.0\.(to_[qkv]|to_out\.0)\.weight', new) \
                and t.ndim == 4 and t.shape[2:] == (1, 1):
            t = t[:, :, 0, 0]
        if new in out:
            duplicates.append(key)
        out[new] = t
    if duplicates:
        raise ExportError(f'the file holds some decoder weights twice under different names: '
                          f'{describe_names(duplicates)}')
    return out, scheme


def infer_config(state_dict):
    """The architecture that a decoder state dict (our names) describes; SD's defaults where it cannot tell."""
    config = dict(SD_VAE)
    w = state_dict.get('post_quant_conv.weight')
    if w is not None and w.ndim == 4:
        config['latent_channels'] = w.shape[0]
    blocks = sorted({int(m.group(1)) for k in state_dict for m in [re.match(r'decoder\.up_blocks\.(\d+)\.', k)] if m})
    channels = []
    for i in blocks:
        c = state_dict.get(f'decoder.up_blocks.{i}.resnets.0.conv1.weight')
        if c is None or c.ndim != 4:
            return config  # let the key comparison name what is missing
        channels.append(c.shape[0])
    if channels and blocks == list(range(len(blocks))):
        config['block_out_channels'] = list(reversed(channels))
        layers = {int(m.group(1)) for k in state_dict for m in [re.match(r'decoder\.up_blocks\.0\.resnets\.(\d+)\.', k)] if m}
        config['layers_per_block'] = max(layers)
    w = state_dict.get('decoder.conv_out.weight')
    if w is not None and w.ndim == 4:
        config['out_channels'] = w.shape[0]
    return config


def read_weights(path):
    """Every tensor of a VAE weight file (safetensors, or torch.save through the restricted unpickler)."""
    if is_safetensors(path) or path.endswith('.safetensors'):
        return load_safetensors(path, keep=lambda k: not k.startswith(_IGNORED_PREFIXES))
    data = load_torch_checkpoint(path)
    name = os.path.basename(path)
    # CompVis .ckpt files wrap the weights: {'state_dict': ..., 'global_step': ...}.
    if isinstance(data, dict) and isinstance(data.get('state_dict'), dict):
        data = data['state_dict']
    if not isinstance(data, dict) or not any(isinstance(v, torch.Tensor) for v in data.values()):
        raise ExportError(f'{name} holds no state dict of tensors')
    wrong = [k for k, v in data.items() if not isinstance(v, torch.Tensor)]
    if wrong:
        raise ExportError(f'{name}: entries that are not tensors: {describe_names(map(str, wrong))}')
    return collections.OrderedDict(data)


def load_vae(path, config=None):
    """An eval-mode float32 VaeDecoder holding the decoder weights of `path`, and the naming scheme found."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise ExportError(f'input file not found: {path}')
    if os.path.isdir(path):
        raise ExportError(f'input is a directory, not a weight file: {path}')
    state_dict, scheme = convert_state_dict(read_weights(path))
    config = dict(config or infer_config(state_dict))
    try:
        vae = VaeDecoder(**config)
    except (TypeError, ValueError) as e:
        raise ExportError(f'{name}: cannot build a VAE decoder of this shape ({e})') from None
    expected = vae.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unknown = [k for k in state_dict if k not in expected]
    if missing or unknown:
        parts = ([f'missing {describe_names(missing)}'] if missing else []) + \
                ([f'unknown {describe_names(unknown)}'] if unknown else [])
        raise ExportError(f"{name} is not an SD VAE ({scheme} names) that this decoder can load: {'; '.join(parts)}")
    wrong = [f'{k} {tuple(state_dict[k].shape)} (expected {tuple(v.shape)})'
             for k, v in expected.items() if tuple(state_dict[k].shape) != tuple(v.shape)]
    if wrong:
        raise ExportError(f'{name}: weights of the wrong shape: {describe_names(wrong, 4)}')
    bad = [k for k, t in state_dict.items() if not t.is_floating_point()]
    if bad:
        raise ExportError(f'{name}: weights that are not floating point: {describe_names(bad)}')
    # Widening F16/BF16 to float32 is exact, and float32 is what EDM2 decodes in.
    vae.load_state_dict({k: t.float() for k, t in state_dict.items()})
    return vae.eval().requires_grad_(False), scheme


# ----------------------------------------------------------------------------
# Writing the TorchScript file.


def export_vae(vae, out_path, meta_overrides=None, verify=False):
    """Script `vae` (a VaeDecoder) and save it with its metadata (kind "vae") to out_path, atomically.

    meta_overrides may set source_file and source_sha256. verify=True reloads the written file and
    checks its output against the module bit for bit before the file is put in place.
    Returns the metadata written.
    """
    if not isinstance(vae, VaeDecoder):
        raise TypeError(f'export_vae needs an autoguide_py.vae.VaeDecoder, got {type(vae).__name__}')
    if any(p.dtype != torch.float32 or p.device.type != 'cpu' for p in vae.parameters()):
        vae = copy.deepcopy(vae).float().cpu()  # the file holds float32 CPU weights; the caller's module stays
    vae.eval()
    meta = collections.OrderedDict(
        format_version=FORMAT_VERSION,
        kind='vae',
        latent_channels=vae.latent_channels,
        scale_factor=vae.scale_factor,
        out_channels=vae.config['out_channels'],
        block_out_channels=vae.config['block_out_channels'],
        layers_per_block=vae.config['layers_per_block'],
        norm_num_groups=vae.config['norm_num_groups'],
        param_count=sum(p.numel() for p in vae.parameters()),
        source_file=None,
        source_sha256=None,
        exporter=EXPORTER,
    )
    for key, value in (meta_overrides or {}).items():
        if key not in ('source_file', 'source_sha256'):
            raise ValueError(f'unknown metadata field {key!r}')
        meta[key] = value
    scripted = torch.jit.script(vae)
    save_model_file(scripted, out_path, {METADATA_FILE: json.dumps(meta, indent=2)},
                    check=(lambda tmp: _verify(vae, tmp)) if verify else None)
    return dict(meta)


def _verify(vae, path):
    loaded = torch.jit.load(path, map_location='cpu')
    z = torch.randn([1, vae.latent_channels, 4, 4], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = vae(z), loaded(z)
    if not torch.equal(want, got):
        raise RuntimeError(f'verification failed: the TorchScript output differs from the Python decoder '
                           f'by up to {(want - got).abs().max().item():.3g}')


# ----------------------------------------------------------------------------
# Command line.


def main(argv=None):
    parser = CliParser(
        prog='export_vae.py',
        description='Convert the Stable Diffusion VAE (stabilityai/sd-vae-ft-mse) to the TorchScript decoder that '
                    'autoguide decodes EDM2 ImageNet-512 latents with. Reads diffusers diffusion_pytorch_model'
                    '.safetensors/.bin and CompVis vae-ft-mse-840000-ema-pruned.safetensors/.ckpt; nothing in the '
                    'input file is executed.')
    parser.add_argument('input', metavar='IN', help='VAE weights (.safetensors, .bin or .ckpt)')
    parser.add_argument('output', metavar='OUT.pt', help='decoder file to write (replaced atomically)')
    parser.add_argument('--verify', action='store_true',
                        help='reload the written decoder and check its output against the Python module')
    parser.add_argument('-q', '--quiet', action='store_true', help='print nothing on success')
    args = parser.parse_args(argv)

    def convert():
        if os.path.exists(args.input) and os.path.exists(args.output) \
                and os.path.samefile(args.input, args.output):
            raise ExportError('the output path is the input file; choose another OUT.pt')
        vae, scheme = load_vae(args.input)
        return scheme, export_vae(vae, args.output, {'source_file': os.path.basename(args.input),
                                                     'source_sha256': sha256_file(args.input)}, verify=args.verify)

    status, result = run_reporting_errors(convert)
    if status:
        return status
    scheme, meta = result
    if not args.quiet:
        print(f"exported {os.path.basename(args.input)} ({scheme} names) -> {args.output}: "
              f"{format_mib(os.path.getsize(args.output))}, {meta['param_count']:,} parameters, "
              f"{meta['latent_channels']} latent channels, {meta['scale_factor']}x upsampling", file=sys.stderr)
    return 0
