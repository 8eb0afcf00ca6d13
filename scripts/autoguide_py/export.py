"""Export an EDM2 network to the TorchScript model file that autoguide's C++ side loads.

Inputs: an official EDM2 pickle or raw training snapshot (read by edm2_unpickler, nothing in it
executed), or an autoguide training checkpoint (a torch.save dict with 'config' and
'state_dict', read by zip_checkpoint as torch.load(weights_only=True) would read it).

Output: a scripted `edm2.Precond` holding the raw weights in their stored dtype (prepare() is
left to the loader, so the file is about the size of the weights), with the metadata in the
TorchScript extra file `autoguide.json`. The file appears complete or not at all.
The format (fields, types, version rule, the prepare() contract): docs/model_format.md.
"""

import argparse
import collections
import copy
import hashlib
import json
import math
import os
import re
import reprlib
import sys

import torch

from . import __version__, edm2
from .atomic_write import atomic_path
from .edm2_checkpoint import ARCHITECTURE_FIELDS, extract_network
from .edm2_unpickler import load_edm2_pickle
from .errors import ExportError, shown
from .legacy_storage import LEGACY_TORCH_SAVE
from .zip_checkpoint import load_torch_checkpoint

FORMAT_VERSION = 1
EXPORTER = f'autoguide {__version__}'
METADATA_FILE = 'autoguide.json'

# Post-hoc EMA and snapshot names end in -<kimg>-<ema std>.pkl.
_NAME_PATTERN = re.compile(r'-(\d+)-(\d+\.\d+)\.pkl$')
# What distinguishes the EDM2 size presets from one another and from custom networks.
_PRESET_FIXED = dict(img_resolution=64, channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[16, 8])
_PRESET_FREE = ('model_channels', 'img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'dropout')


def describe_names(names, limit=12):
    names = [shown(n) for n in names]
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def model_size(config):
    """The EDM2 size name (xxs..xxl) of an architecture config, or None if it is no preset."""
    full = dict(ARCHITECTURE_FIELDS)
    full.update(config)
    for key, value in _PRESET_FIXED.items():
        mine = list(full[key]) if isinstance(value, list) else full[key]
        if mine != value:
            return None
    for key, default in ARCHITECTURE_FIELDS.items():
        if key not in _PRESET_FIXED and key not in _PRESET_FREE and full[key] != default:
            return None
    names = [name for name, channels in edm2.SIZES.items() if channels == full['model_channels']]
    return names[0] if names else None


def parse_file_name(path):
    """(training kimg, post-hoc EMA std) from a name like edm2-img512-xs-2147483-0.135.pkl, else (None, None)."""
    m = _NAME_PATTERN.search(os.path.basename(path))
    return (int(m.group(1)), float(m.group(2))) if m else (None, None)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------
# Rebuilding the network.


def _assign_weights(net, state_dict):
    """Install the tensors as the network's parameters and buffers, without copying or casting."""
    expected = net.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f'missing {describe_names(missing)}')
        if unexpected:
            parts.append(f'unexpected {describe_names(unexpected)}')
        raise ExportError(f"the weights do not fit the architecture rebuilt from the file's config: "
                          f"{'; '.join(parts)}")
    wrong = [f'{k} {tuple(state_dict[k].shape)} (expected {tuple(v.shape)})'
             for k, v in expected.items() if tuple(state_dict[k].shape) != tuple(v.shape)]
    if wrong:
        raise ExportError(f"the weights do not fit the architecture rebuilt from the file's config: "
                          f'{describe_names(wrong, 4)}')
    for name, tensor in state_dict.items():
        if not tensor.is_floating_point():
            raise ExportError(f'weight {name} is {tensor.dtype}, expected a floating-point tensor')
        path, _, leaf = name.rpartition('.')
        module = net.get_submodule(path) if path else net
        tensor = tensor.detach().to('cpu').contiguous()
        if leaf in module._parameters:
            module._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=False)
        else:
            module._buffers[leaf] = tensor


# Bounds far beyond any EDM2 network (XXL: 448 channels, 4 levels of 3 blocks), so that a file cannot make the
# exporter build millions of modules or huge weights: (lowest, highest) per integer field, list lengths <= 16.
_INT_RANGES = dict(img_resolution=(1, 16384), img_channels=(1, 1024), label_dim=(0, 1 << 20),
                   logvar_channels=(1, 4096), model_channels=(1, 8192), num_blocks=(0, 64),
                   channels_per_head=(1, 8192), channel_mult_noise=(1, 64), channel_mult_emb=(1, 64))
_INT_LISTS = dict(channel_mult=(1, 64), attn_resolutions=(1, 16384))
_NUMBERS = ('sigma_data', 'label_balance', 'concat_balance', 'dropout', 'res_balance', 'attn_balance', 'clip_act')


def _check_plausible(config):
    def bad(key):
        return ExportError(f'implausible architecture field {key}={shown(reprlib.repr(config[key]), 60)} in the '
                           f'config; the file is corrupt or not an EDM2 network')
    for key, value in config.items():
        if key in _INT_RANGES and value is not None:
            lo, hi = _INT_RANGES[key]
            if type(value) is not int or not lo <= value <= hi:
                raise bad(key)
        elif key in _INT_LISTS:
            lo, hi = _INT_LISTS[key]
            if not (isinstance(value, (list, tuple)) and len(value) <= 16
                    and all(type(v) is int and lo <= v <= hi for v in value)):
                raise bad(key)
        elif key == 'resample_filter':
            if not (isinstance(value, (list, tuple)) and 1 <= len(value) <= 16
                    and all(type(v) in (int, float) and math.isfinite(v) for v in value)):
                raise bad(key)
        elif key in _NUMBERS and value is not None:
            if type(value) not in (int, float) or not math.isfinite(value) or abs(value) > 1e6:
                raise bad(key)
        elif key == 'use_fp16' and type(value) not in (bool, int):
            raise bad(key)


def build_precond(config, state_dict):
    """An eval-mode edm2.Precond of the given architecture holding exactly these tensors."""
    unknown = [k for k in config if k not in ARCHITECTURE_FIELDS]
    if unknown:
        raise ExportError(f"unknown architecture field '{shown(unknown[0])}' in the config "
                          f"(known: {', '.join(ARCHITECTURE_FIELDS)})")
    _check_plausible(config)
    try:
        # Built on the meta device: no memory for weights that get replaced anyway.
        net = edm2.Precond(**config, device='meta')
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise ExportError(f'cannot build the EDM2 architecture from the recorded config: {e}') from None
    _assign_weights(net, state_dict)
    return net.eval()


def _config_from_pickle(state_dict, init_kwargs, attrs):
    config = dict(init_kwargs)
    # EDM2's forward reads these attributes, so they win over the recorded arguments.
    for key in ('img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_data',
                'label_balance', 'concat_balance'):
        if key in attrs:
            config[key] = attrs[key]
    for key in ('img_resolution', 'img_channels', 'label_dim'):
        if key not in config:
            raise ExportError(f"the pickle's ema network records no {key}")
    blocks = list(attrs.get('blocks', {}).values())
    if blocks:
        for key in ('res_balance', 'attn_balance', 'clip_act', 'resample_filter'):
            if key in blocks[0]:
                config[key] = blocks[0][key]
    if 'logvar_channels' not in config and 'logvar_fourier.freqs' in state_dict:
        config['logvar_channels'] = state_dict['logvar_fourier.freqs'].shape[0]
    if 'model_channels' not in config and 'unet.out_conv.weight' in state_dict:
        mult = config.get('channel_mult', ARCHITECTURE_FIELDS['channel_mult'])
        config['model_channels'] = state_dict['unet.out_conv.weight'].shape[1] // mult[0]
    return config


def _check_blocks(net, recorded):
    """Compare every Block with the attributes the pickle recorded for it."""
    ours = {name: m for name, m in net.named_modules() if isinstance(m, edm2.Block)}
    if recorded and set(ours) != set(recorded):
        raise ExportError('the pickle\'s U-Net blocks differ from the rebuilt architecture: '
                          f'{describe_names(sorted(set(ours) ^ set(recorded)))}')
    for name, attrs in recorded.items():
        block = ours[name]
        for key, value in attrs.items():
            mine = getattr(block, key)
            if not _same_attribute(key, value, mine) and key != 'dropout':
                raise ExportError(f'architecture mismatch at {shown(name)}: {key} is {shown(reprlib.repr(value))} '
                                  f'in the pickle but {mine!r} when rebuilt from its _init_kwargs')


def _same_attribute(key, value, mine):
    # Only plain values are compared: anything else in a pickle could be a huge graph of shared references.
    if key == 'resample_filter':
        return isinstance(value, (list, tuple)) and len(value) <= 16 and all(
            type(v) in (int, float) for v in value) and [float(v) for v in value] == mine
    if isinstance(mine, float) or isinstance(value, float):
        return type(value) in (int, float) and mine is not None and float(value) == float(mine)
    return type(value) in (int, str, bool, type(None)) and value == mine


def _sniff(path):
    with open(path, 'rb') as f:
        head = f.read(len(LEGACY_TORCH_SAVE))
    if head.startswith(b'PK\x03\x04'):
        return 'torch-zip'
    if head == LEGACY_TORCH_SAVE:
        return 'torch-legacy'
    return 'pickle'


def _load_checkpoint(path):
    name = os.path.basename(path)
    ckpt = load_torch_checkpoint(path)
    if not isinstance(ckpt, dict) or 'config' not in ckpt or 'state_dict' not in ckpt:
        raise ExportError(f"{name} is a torch.save file but not an autoguide checkpoint "
                          f"(expected a dict with 'config' and 'state_dict')")
    config, state_dict = ckpt['config'], ckpt['state_dict']
    if not isinstance(config, dict) or not isinstance(state_dict, dict) \
            or not all(isinstance(t, torch.Tensor) for t in state_dict.values()):
        raise ExportError(f"{name}: 'config' must be a dict and 'state_dict' a dict of tensors")
    for key in ('img_resolution', 'img_channels', 'label_dim'):
        if key not in config:
            raise ExportError(f"{name}: the config lacks '{key}'")
    net = build_precond(dict(config), collections.OrderedDict(state_dict))
    for key in ('kimg', 'ema_std'):
        if not _is_plain_number(ckpt.get(key)):
            raise ExportError(f"{name}: '{key}' must be a number")
    return net, ckpt.get('encoder'), ckpt.get('kimg'), ckpt.get('ema_std')


def _is_plain_number(value):
    """None or a finite int/float: what metadata may carry (anything else could be a huge memo graph)."""
    return value is None or (type(value) in (int, float) and math.isfinite(value))


def load_network(path):
    """Read any supported input file into (eval-mode edm2.Precond, metadata fields)."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise ExportError(f'input file not found: {path}')
    if os.path.isdir(path):
        raise ExportError(f'input is a directory, not a network file: {path}')
    try:
        digest = sha256_file(path)
        kind = _sniff(path)
    except OSError as e:
        raise ExportError(f'cannot read {path}: {e.strerror}') from None
    kimg, ema_std = parse_file_name(path)

    if kind == 'pickle':
        state_dict, init_kwargs, attrs, encoder = extract_network(load_edm2_pickle(path))
        net = build_precond(_config_from_pickle(state_dict, init_kwargs, attrs), state_dict)
        _check_blocks(net, attrs.get('blocks', {}))
    else:
        net, encoder, ckpt_kimg, ckpt_std = _load_checkpoint(path)
        kimg = ckpt_kimg if ckpt_kimg is not None else kimg
        ema_std = ckpt_std if ckpt_std is not None else ema_std

    if encoder is None:
        if net.img_channels != 3:
            raise ExportError(f'{name} records no encoder and its {net.img_channels}-channel images are not RGB; '
                              f'only RGB networks may omit the encoder')
        encoder = {'type': 'rgb'}
    info = dict(encoder=encoder, training_kimg=kimg, ema_std=ema_std, source_file=name, source_sha256=digest)
    return net, info


# ----------------------------------------------------------------------------
# Writing the TorchScript file.


def _check_encoder(encoder, img_channels):
    if not isinstance(encoder, dict) or encoder.get('type') not in ('rgb', 'vae'):
        raise ExportError(f"encoder must be {{'type': 'rgb'}} or {{'type': 'vae', ...}}, got {encoder!r}")
    if encoder['type'] == 'rgb':
        return {'type': 'rgb'}
    try:
        scale = [float(v) for v in encoder['scale']]
        bias = [float(v) for v in encoder['bias']]
    except (KeyError, TypeError, ValueError):
        raise ExportError('a vae encoder needs numeric scale and bias lists') from None
    if not (encoder.get('vae_name') is None or isinstance(encoder.get('vae_name'), str)):
        raise ExportError('a vae encoder\'s vae_name must be a string')
    if len(scale) != img_channels or len(bias) != img_channels:
        raise ExportError(f'the vae encoder has {len(scale)} scale and {len(bias)} bias entries; '
                          f'the network has {img_channels} channels')
    return {'type': 'vae', 'scale': scale, 'bias': bias, 'vae_name': encoder.get('vae_name')}


def _blank_prepared(scripted):
    # The scripted module shares tensors with the Python one; clearing its attribute slots
    # keeps the file to the raw weights without touching the caller's prepared network.
    for _, module in scripted.named_modules():
        if module.original_name == 'MPConv':
            module.w_eff = torch.empty(0)
        elif module.original_name == 'Block':
            module.resample_f = torch.empty(0)


def _verify(net, path):
    """Check that the file just written computes what the Python network computes."""
    loaded = torch.jit.load(path, map_location='cpu')
    loaded.prepare()
    net.prepare()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([2, net.img_channels, net.img_resolution, net.img_resolution], generator=gen)
    sigma = torch.tensor([0.5, 5.0])
    labels = None
    if net.label_dim:
        labels = torch.nn.functional.one_hot(torch.tensor([0, net.label_dim - 1]), net.label_dim).float()
    with torch.no_grad():
        want, got = net(x, sigma, labels), loaded(x, sigma, labels)
    if not torch.equal(want, got):
        raise RuntimeError(f'verification failed: the TorchScript output differs from the Python network '
                           f'by up to {(want - got).abs().max().item():.3g}')


def save_model_file(scripted, out_path, extra_files, check=None):
    """torch.jit.save `scripted` with `extra_files` to out_path, which appears complete or not at all.

    check(tmp_path) may inspect the written file and raise before it is put in place.
    """
    out_path = os.path.abspath(out_path)
    folder = os.path.dirname(out_path)
    if os.path.isdir(out_path):
        raise ExportError(f'output path is a directory: {out_path}')
    if not os.path.isdir(folder):
        raise ExportError(f'output folder does not exist: {folder}')
    created = False
    try:
        with atomic_path(out_path) as tmp:
            created = True
            torch.jit.save(scripted, tmp, _extra_files=extra_files)
            if check is not None:
                check(tmp)
    except OSError as e:
        if created:
            raise
        raise ExportError(f'cannot write to {folder}: {e.strerror}') from None


def denoiser_metadata(net, meta_overrides=None):
    """The autoguide.json fields of an edm2.Precond (docs/model_format.md), with meta_overrides set:
    training_kimg, ema_std, encoder ({'type': 'rgb'} by default, or {'type': 'vae', 'scale', 'bias',
    'vae_name'}), source_file, source_sha256."""
    config = dict(ARCHITECTURE_FIELDS)
    config.update(net.config)
    meta = collections.OrderedDict(
        format_version=FORMAT_VERSION,
        img_resolution=net.img_resolution,
        img_channels=net.img_channels,
        label_dim=net.label_dim,
        sigma_data=net.sigma_data,
        use_fp16=net.use_fp16,
        model_size=model_size(net.config),
        model_channels=config['model_channels'],
        channel_mult=list(config['channel_mult']),
        num_blocks=config['num_blocks'],
        attn_resolutions=list(config['attn_resolutions']),
        # Parameters as EDM2's Table 6 counts them: logvar_linear in, Fourier buffers out.
        param_count=sum(p.numel() for p in net.parameters()),
        training_kimg=None,
        ema_std=None,
        encoder={'type': 'rgb'},
        source_file=None,
        source_sha256=None,
        exporter=EXPORTER,
    )
    for key, value in (meta_overrides or {}).items():
        if key not in meta:
            raise ValueError(f'unknown metadata field {key!r}')
        meta[key] = value
    meta['encoder'] = _check_encoder(meta['encoder'], net.img_channels)
    return meta


def script_precond(net):
    """The TorchScript form of an eval-mode edm2.Precond, holding its raw weights only."""
    scripted = torch.jit.script(net.eval())
    _blank_prepared(scripted)
    return scripted


def export_precond(net, out_path, meta_overrides=None, verify=False):
    """Script `net` (an edm2.Precond) and save it with its metadata to out_path.

    meta_overrides sets metadata fields the network cannot know (denoiser_metadata). verify=True reloads
    the written file and checks that its output equals the network's bit for bit before the file is put
    in place. Returns the metadata written.
    """
    if not isinstance(net, edm2.Precond):
        raise TypeError(f'export_precond needs an autoguide_py.edm2.Precond, got {type(net).__name__}')
    if any(t.device.type != 'cpu' for t in net.state_dict().values()):
        net = copy.deepcopy(net).cpu()
    meta = denoiser_metadata(net, meta_overrides)
    save_model_file(script_precond(net), out_path, {METADATA_FILE: json.dumps(meta, indent=2)},
                    check=(lambda tmp: _verify(net, tmp)) if verify else None)
    return dict(meta)


def read_metadata(path):
    """The autoguide.json metadata of an exported model file."""
    files = {METADATA_FILE: ''}
    torch.jit.load(path, map_location='cpu', _extra_files=files)
    return json.loads(files[METADATA_FILE])


# ----------------------------------------------------------------------------
# Command line.


class CliParser(argparse.ArgumentParser):
    def error(self, message):
        print(f'error: {message} (see --help)', file=sys.stderr)
        sys.exit(2)


def format_mib(n):
    return f'{n / (1 << 20):.1f} MiB'


def run_reporting_errors(body):
    """(0, body()) on success; otherwise one `error:` line on stderr and (2 for bad input, 1 else, 130)."""
    try:
        return 0, body()
    except ExportError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2, None
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        return 130, None
    except Exception as e:  # anything unforeseen still ends as one line, exit status 1
        text = str(e).strip().splitlines()[0] if str(e).strip() else ''
        print(f'error: {type(e).__name__}: {text}', file=sys.stderr)
        return 1, None


def main(argv=None):
    parser = CliParser(
        prog='export_edm2.py',
        description='Convert an EDM2 network pickle (official release or raw training snapshot) or an '
                    'autoguide training checkpoint to the TorchScript model file autoguide samples with. '
                    'Nothing in the input file is executed.')
    parser.add_argument('input', metavar='IN', help='edm2-*.pkl, network-snapshot-*.pkl, or a checkpoint .pt')
    parser.add_argument('output', metavar='OUT.pt', help='model file to write (replaced atomically)')
    parser.add_argument('--kimg', type=int, help='training length in kimg (default: from the file name)')
    parser.add_argument('--ema-std', '--ema_std', dest='ema_std', type=float,
                        help='post-hoc EMA std (default: from the file name)')
    parser.add_argument('--verify', action='store_true',
                        help='reload the written model and check its output against the Python network')
    parser.add_argument('-v', '--verbose', action='store_true', help='show progress even when stderr is not a terminal')
    parser.add_argument('-q', '--quiet', action='store_true', help='print nothing on success')
    args = parser.parse_args(argv)

    show = (args.verbose or sys.stderr.isatty()) and not args.quiet

    def progress(text):
        if show:
            print(f'export: {text}', file=sys.stderr, flush=True)

    def convert():
        if os.path.abspath(args.input) == os.path.abspath(args.output):
            raise ExportError('the output path is the input file; choose another OUT.pt')
        progress(f'reading {args.input}')
        net, info = load_network(args.input)
        if args.kimg is not None:
            info['training_kimg'] = args.kimg
        if args.ema_std is not None:
            info['ema_std'] = args.ema_std
        progress('compiling TorchScript and writing' + (' (with verification)' if args.verify else ''))
        return export_precond(net, args.output, info, verify=args.verify)

    status, meta = run_reporting_errors(convert)
    if status:
        return status

    if not args.quiet:
        enc = meta['encoder']
        enc_text = 'rgb' if enc['type'] == 'rgb' else f"vae ({enc.get('vae_name')})"
        size = f", size {meta['model_size']}" if meta['model_size'] else ''
        print(f"exported {os.path.basename(args.input)} -> {args.output}: {format_mib(os.path.getsize(args.output))}, "
              f"{meta['param_count']:,} parameters, label_dim {meta['label_dim']}{size}, encoder {enc_text}",
              file=sys.stderr)
    return 0
