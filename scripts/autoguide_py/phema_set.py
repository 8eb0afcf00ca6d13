"""Snapshot sets: one training run's power-function EMA snapshots in one file, from which autoguide builds
a post-hoc EMA of any length at load (EDM2 Sec. 3.2: theta(sigma_rel) = sum_k c_k theta_k).

Inputs are the snapshots a run saved, named <prefix>-<kimg>-<std>.pkl (EDM2's raw snapshots, read by the
restricted unpickler: nothing in them runs) or <prefix>-<kimg>-<std>.pt (our training checkpoints, read as
torch.load(weights_only=True) would). The set is a TorchScript archive: the scripted network once (holding
the last snapshot's weights) and every snapshot's weights as a list of name -> tensor dicts in the order
(training length, EMA std), with the metadata in autoguide.json. Format: docs/model_format.md.
"""

import collections
import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List

import torch

from . import phema
from .errors import ExportError, shown
from .export import (METADATA_FILE, denoiser_metadata, load_network, save_model_file, script_precond,
                     sha256_file)

KIND = 'snapshot_set'
NAME = re.compile(r'^(.*)-(\d+)-(\d+\.\d+)\.(pkl|pt)$')


@dataclass
class Snapshot:
    path: str
    nimg: int
    std: float
    net: torch.nn.Module  # an eval-mode edm2.Precond
    encoder: dict
    sha256: str

    @property
    def name(self):
        return os.path.basename(self.path)


def edm2_nimg(kimg):
    """EDM2 names snapshots by kimg = nimg // 1000 of an image count that is a multiple of 1024 (its batches
    of 2048 images split in rounds); the exact count, as its reconstruct_phema.py recovers it."""
    return (kimg * 1000 + 999) // 1024 * 1024


def snapshot_paths(indir, prefix=None):
    """The files of a folder named <prefix>-<kimg>-<std>.pkl/.pt (only those of `prefix` when given)."""
    if not os.path.isdir(indir):
        raise ExportError(f'{indir} is not a folder of snapshots')
    names = sorted(n for n in os.listdir(indir) if NAME.match(n) and (prefix is None or NAME.match(n).group(1) == prefix))
    return [os.path.join(indir, n) for n in names]


def read_snapshot(path):
    """One snapshot file as a Snapshot (its training length from the checkpoint, else from the name)."""
    m = NAME.match(os.path.basename(path))
    net, info = load_network(path)
    if path.endswith('.pt'):
        # load_network read the checkpoint's kimg and ema_std; our checkpoints also keep the exact image count.
        from .zip_checkpoint import load_torch_checkpoint
        ckpt = load_torch_checkpoint(path)
        nimg = ckpt.get('nimg') if isinstance(ckpt, dict) else None
        nimg = nimg if type(nimg) is int else int(m.group(2)) * 1000
        std = info['ema_std'] if info['ema_std'] is not None else float(m.group(3))
    else:
        nimg, std = edm2_nimg(int(m.group(2))), float(m.group(3))
    if not 0 < nimg or not 0 < std < phema.STD_LIMIT:
        raise ExportError(f'{os.path.basename(path)}: training length {nimg} images and EMA std {std} are not a '
                          f'power-function EMA snapshot (length > 0, std in (0, {phema.STD_LIMIT:.3f}))')
    return Snapshot(path, nimg, float(std), net, info['encoder'], info['source_sha256'])


def _architecture(net):
    return repr(sorted(net.config.items()))


def check_series(snaps, where):
    """The snapshots of one run in the order (training length, std), or ExportError naming what is wrong:
    fewer than two, two architectures or encoders, a length missing one of the EMA profiles, a duplicate."""
    if len(snaps) < 2:
        raise ExportError(f'{where} holds {len(snaps)} snapshot(s) named <prefix>-<kimg>-<std>.pt/.pkl; '
                          f'post-hoc EMA needs at least 2')
    snaps = sorted(snaps, key=lambda s: (s.nimg, s.std))
    first = snaps[0]
    for s in snaps[1:]:
        if _architecture(s.net) != _architecture(first.net):
            raise ExportError(f'{s.name} and {first.name} are networks of different architectures; a set holds '
                              f'one run (give --inprefix or a folder of one run)')
        if s.encoder != first.encoder:
            raise ExportError(f'{s.name} and {first.name} record different encoders; a set holds one run')
        mine, theirs = s.net.state_dict(), first.net.state_dict()
        wrong = [k for k in mine if mine[k].dtype != theirs[k].dtype]
        if wrong:
            raise ExportError(f'{s.name} stores {shown(wrong[0])} as {mine[wrong[0]].dtype}, {first.name} as '
                              f'{theirs[wrong[0]].dtype}; a set holds one run')
    profiles = collections.defaultdict(list)
    for s in snaps:
        profiles[s.nimg].append(s.std)
    stds = sorted({s.std for s in snaps})
    if len(stds) < 2:
        raise ExportError(f'{where} holds one EMA profile (std {stds[0]:.3f}); post-hoc EMA needs the two a '
                          f'training run saves (e.g. 0.050 and 0.100)')
    for nimg, have in profiles.items():
        if len(set(have)) != len(have):
            raise ExportError(f'{where} holds two snapshots at {nimg} images with std {have[0]:.3f}; keep one')
        missing = [s for s in stds if s not in have]
        if missing:
            raise ExportError(f'{where} lacks the EMA {missing[0]:.3f} snapshot at {nimg} images (kimg '
                              f'{nimg // 1000}); every training length needs every profile: add it or remove '
                              f'that length')
    return snaps


class SnapshotSet(torch.nn.Module):
    """What the set file holds: the network once and each snapshot's weights by state-dict name."""
    snapshots: List[Dict[str, torch.Tensor]]

    def __init__(self, net, snapshots):
        super().__init__()
        self.net = net
        self.snapshots = snapshots


def set_metadata(snaps, source):
    last = snaps[-1]
    meta = denoiser_metadata(last.net, dict(encoder=last.encoder, training_kimg=last.nimg // 1000,
                                            source_file=source))
    meta['kind'] = KIND
    meta['snapshots'] = [collections.OrderedDict(nimg=s.nimg, ema_std=s.std, source_file=s.name,
                                                 source_sha256=s.sha256) for s in snaps]
    return meta


def write_snapshot_set(snaps, out_path, source):
    """Writes the checked, ordered snapshots as one set file (appearing complete or not at all)."""
    last = snaps[-1]
    weights = [{k: v.detach().contiguous() for k, v in s.net.state_dict().items()} for s in snaps]
    # The network's tensors are the last snapshot's own: the archive stores shared storage once.
    module = SnapshotSet(script_precond(last.net), weights)
    scripted = torch.jit.script(module)
    meta = set_metadata(snaps, source)

    def check(tmp):
        loaded = torch.jit.load(tmp, map_location='cpu')
        if len(loaded.snapshots) != len(snaps):
            raise RuntimeError('verification failed: the written set lost snapshots')

    save_model_file(scripted, out_path, {METADATA_FILE: json.dumps(meta, indent=2)}, check=check)
    return meta


def convert(indir, out_path, prefix=None, progress=lambda text: None):
    paths = snapshot_paths(indir, prefix)
    if len(paths) < 2:
        raise ExportError(f'{indir} holds {len(paths)} snapshot(s) named <prefix>-<kimg>-<std>.pt/.pkl'
                          f'{"" if prefix is None else f" with prefix {shown(prefix)}"}; post-hoc EMA needs at least 2')
    snaps = []
    for p in paths:
        progress(f'reading {os.path.basename(p)}')
        snaps.append(read_snapshot(p))
    snaps = check_series(snaps, indir)
    if os.path.abspath(out_path).startswith(os.path.abspath(indir) + os.sep) and NAME.match(os.path.basename(out_path)):
        raise ExportError(f'{out_path} would be read as a snapshot of {indir}; name the set otherwise')
    progress(f'writing {len(snaps)} snapshots to {out_path}')
    return write_snapshot_set(snaps, out_path, os.path.basename(os.path.normpath(indir)))
