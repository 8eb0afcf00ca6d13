"""Write a trained ToyDenoiser as an autoguide model file (TorchScript + autoguide.json metadata).

The toy points are 2-vectors; autoguide samples images, so a point travels as a [2,1,1] "image"
(img_channels 2, img_resolution 1). The file appears complete or not at all.
"""

import hashlib
import json
import os
import sys

import torch

# The model-file conventions (metadata name, format version, atomic saving) are the EDM2 exporter's.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # scripts/
from autoguide_py.export import EXPORTER, FORMAT_VERSION, METADATA_FILE, save_model_file, sha256_file  # noqa: E402,F401


def weights_sha256(net):
    """Digest of the float32 weights in state_dict order: identifies a training result independently of
    TorchScript's (non-deterministic) zip container."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def metadata(net, training):
    """training: dict with at least iterations, batch_size, ema_std; stored whole under 'toy'."""
    return {
        'format_version': FORMAT_VERSION,
        'img_resolution': 1,
        'img_channels': 2,
        'label_dim': net.label_dim,
        'sigma_data': net.sigma_data,
        'use_fp16': False,
        'model_size': None,
        'model_channels': net.hidden_dim,
        'param_count': net.param_count(),
        'training_kimg': training['iterations'] * training['batch_size'] / 1000,
        'ema_std': training['ema_std'],
        'encoder': {'type': 'rgb'},
        # No pickle exists upstream of these files; the source is the training run, identified by its weights.
        'source_file': 'scripts/experiments/toy/train.py (role %s)' % training.get('role', '?'),
        'source_sha256': weights_sha256(net),
        'exporter': EXPORTER,
        'toy': training,
    }


def export(net, path, training):
    net = net.to(torch.float32).eval().requires_grad_(False)
    scripted = torch.jit.script(net)
    meta = json.dumps(metadata(net, training), indent=1, sort_keys=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_model_file(scripted, path, {METADATA_FILE: meta})

