"""What the network in an unpickled EDM2 snapshot is: its weights, constructor keywords, attributes and encoder.

The input is the plain data that edm2_unpickler.load_edm2_pickle returns; nothing here reads a file.
"""

import collections
import inspect

import numpy as np
import torch

from . import edm2
from .edm2_unpickler import ModuleDictStub, PersistentObject
from .errors import ExportError, shown


def _architecture_fields():
    fields = {}
    for cls in (edm2.Precond, edm2.UNet, edm2.Block):
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in (
                    'self', 'device', 'in_channels', 'out_channels', 'emb_channels',
                    'flavor', 'resample_mode', 'attention'):
                fields.setdefault(p.name, p.default)
    return fields


# Every keyword an EDM2 Precond accepts (through UNet and Block), with its default.
ARCHITECTURE_FIELDS = _architecture_fields()
_PRECOND_POSITIONAL = ('img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_data', 'logvar_channels')
_PRECOND_ATTRS = ('img_resolution', 'img_channels', 'label_dim', 'use_fp16', 'sigma_data')
_BLOCK_ATTRS = ('out_channels', 'flavor', 'resample_filter', 'resample_mode', 'num_heads',
                'dropout', 'res_balance', 'attn_balance', 'clip_act')


def _module_state(obj, where):
    if isinstance(obj, (PersistentObject, ModuleDictStub)):
        return obj.state
    raise ExportError(f"unsupported network: '{shown(where)}' is a {type(obj).__name__}, not an EDM2 module")


def _collect_tensors(obj, prefix, out, blocks, seen=None):
    # A module reached twice (memo references make a pickle's objects a graph, not a tree) would make this
    # walk loop forever on a cycle, or take exponential time on a DAG of shared children.
    seen = set() if seen is None else seen
    if id(obj) in seen:
        raise ExportError(f"corrupt pickle: module '{shown(prefix.rstrip('.') or 'ema')}' appears twice in the network")
    seen.add(id(obj))
    state = _module_state(obj, prefix.rstrip('.') or 'ema')
    if isinstance(obj, PersistentObject) and obj.class_name == 'Block':
        blocks[prefix.rstrip('.')] = {k: state[k] for k in _BLOCK_ATTRS if k in state}
    skip = state.get('_non_persistent_buffers_set') or set()
    for kind in ('_parameters', '_buffers'):
        for name, t in (state.get(kind) or {}).items():
            if t is None or (kind == '_buffers' and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise ExportError(f'corrupt pickle: {shown(prefix + str(name))} is not a tensor')
            out[prefix + name] = t
    for name, child in (state.get('_modules') or {}).items():
        if child is not None:
            _collect_tensors(child, f'{prefix}{name}.', out, blocks, seen)


def _encoder_constants(value):
    # A numpy array (EDM2's) or a short list of numbers; nothing else is walked (a memo graph could be huge).
    if isinstance(value, np.ndarray) and value.dtype.kind in 'iuf' and value.size <= 64:
        return [float(v) for v in value.astype(np.float64).ravel()]
    if isinstance(value, (list, tuple)) and len(value) <= 64 and all(
            type(v) in (int, float) for v in value):
        return [float(v) for v in value]
    return None


def _encoder_info(encoder):
    if encoder is None:
        return None
    if not isinstance(encoder, PersistentObject):
        raise ExportError(f"unsupported pickle: 'encoder' is a {type(encoder).__name__}")
    if encoder.class_name == 'StandardRGBEncoder':
        return {'type': 'rgb'}
    if encoder.class_name == 'StabilityVAEEncoder':
        s = encoder.state
        scale, bias = _encoder_constants(s.get('scale')), _encoder_constants(s.get('bias'))
        if scale is None or bias is None:
            raise ExportError('corrupt pickle: the VAE encoder has no usable scale/bias')
        if len(scale) != 4 or len(bias) != 4:
            raise ExportError(f'unsupported VAE encoder: expected 4 latent channels, got {len(scale)}')
        vae_name = s.get('vae_name')
        if not (isinstance(vae_name, str) and len(vae_name) < 1000):
            raise ExportError('corrupt pickle: the VAE encoder has no vae_name string')
        return {'type': 'vae', 'vae_name': vae_name, 'scale': scale, 'bias': bias}
    raise ExportError(f"unsupported encoder class '{shown(encoder.class_name)}' "
                      f'(known: StandardRGBEncoder, StabilityVAEEncoder)')


def extract_network(data):
    """Split an unpickled EDM2 snapshot into (state_dict, init_kwargs, attrs, encoder_info).

    state_dict: OrderedDict name -> tensor, the same keys as EDM2's `ema.state_dict()`.
    init_kwargs: the Precond constructor keywords recorded in the pickle (positional
        arguments folded in), checked against the known architecture fields.
    attrs: the Precond attributes (img_resolution, img_channels, label_dim, use_fp16,
        sigma_data), 'label_balance'/'concat_balance' of the UNet, and 'blocks': per Block
        (dotted name under ema) its recorded attributes.
    encoder_info: {'type': 'rgb'}, {'type': 'vae', 'vae_name', 'scale', 'bias'}, or None
        when the pickle holds no encoder.
    """
    if isinstance(data, PersistentObject):
        raise ExportError(f"not an EDM2 network pickle: the file holds a bare '{shown(data.class_name)}' object, "
                          f'not a snapshot dict with an ema network')
    if not isinstance(data, dict):
        raise ExportError(f'not an EDM2 network pickle: the file holds a {type(data).__name__}, '
                          f'not a snapshot dict with an ema network')
    if 'ema' not in data:
        keys = ', '.join(shown(repr(k), 40) for k in list(data)[:8]) or 'none'
        raise ExportError(f"the pickle has no 'ema' network (keys: {keys}); export an EDM2 network pickle "
                          f'(e.g. edm2-img512-xs-2147483-0.135.pkl) or a network-snapshot-*.pkl')
    ema = data['ema']
    if not isinstance(ema, PersistentObject) or ema.class_name != 'Precond':
        what = shown(ema.class_name) if isinstance(ema, PersistentObject) else type(ema).__name__
        raise ExportError(f"unsupported network: 'ema' is a {what}, expected an EDM2 Precond")

    state_dict = collections.OrderedDict()
    blocks = collections.OrderedDict()
    _collect_tensors(ema, '', state_dict, blocks)

    args = ema.state.get('_init_args') or ()
    kwargs = ema.state.get('_init_kwargs') or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict) or len(args) > len(_PRECOND_POSITIONAL):
        raise ExportError('corrupt pickle: malformed _init_args/_init_kwargs of the ema network')
    init_kwargs = dict(zip(_PRECOND_POSITIONAL, args))
    init_kwargs.update(kwargs)
    for key in init_kwargs:
        if key not in ARCHITECTURE_FIELDS:
            raise ExportError(f"unknown architecture field '{shown(key)}' in the pickle's _init_kwargs; this exporter "
                              f'rebuilds only the EDM2 architecture of NVlabs/edm2 (known fields: '
                              f"{', '.join(ARCHITECTURE_FIELDS)})")

    attrs = {k: ema.state[k] for k in _PRECOND_ATTRS if k in ema.state}
    unet = (ema.state.get('_modules') or {}).get('unet')
    if isinstance(unet, PersistentObject):
        for k in ('label_balance', 'concat_balance'):
            if k in unet.state:
                attrs[k] = unet.state[k]
    attrs['blocks'] = blocks
    return state_dict, init_kwargs, attrs, _encoder_info(data.get('encoder'))
