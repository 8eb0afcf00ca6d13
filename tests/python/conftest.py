"""Shared test setup: import paths, tiny EDM2 networks, and a runner for the export CLI."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / 'scripts'
EXPORT_SCRIPT = SCRIPTS / 'export_edm2.py'
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from autoguide_py import edm2  # noqa: E402

# Small enough to script and run in well under a second, yet with every kind of module:
# down/up blocks, conv_skip, attention, the label embedding.
TINY_COND = dict(img_resolution=16, img_channels=4, label_dim=10, model_channels=16, channel_mult=[1, 2],
                 num_blocks=1, attn_resolutions=[8], channels_per_head=16)
TINY_UNCOND = dict(img_resolution=8, img_channels=3, label_dim=0, model_channels=16, channel_mult=[1, 2],
                   num_blocks=1, attn_resolutions=[4], channels_per_head=16)


def make_net(config, seed=0):
    """A Precond with random weights and random (non-zero) gains, so every path affects D."""
    torch.manual_seed(seed)
    net = edm2.Precond(**config).eval().requires_grad_(False)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 0:
                p.copy_(torch.randn([]))
    return net


def inputs(config, n=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn([n, config['img_channels'], config['img_resolution'], config['img_resolution']], generator=gen)
    labels = None
    if config['label_dim']:
        labels = torch.nn.functional.one_hot(torch.randint(config['label_dim'], [n], generator=gen),
                                             config['label_dim']).float()
    return x, labels


def run_export_cli(*args, env=None, python=None):
    """Run scripts/export_edm2.py in a fresh interpreter; returns the CompletedProcess."""
    cmd = [python or sys.executable, str(EXPORT_SCRIPT), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=str(ROOT))


@pytest.fixture
def out_dir(tmp_path):
    """An empty folder for outputs; tests check that nothing stray is left in it."""
    d = tmp_path / 'out'
    d.mkdir()
    return d


@pytest.fixture(scope='session')
def nets(tmp_path_factory):
    """The tiny main (conditional), guide (conditional, smaller) and uncond nets, exported once per session."""
    import model_fixtures
    d = tmp_path_factory.mktemp('nets')
    torch.set_num_threads(1)
    return {role: model_fixtures.export_role(role, str(d))[1] for role in ('main', 'guide', 'uncond')}
