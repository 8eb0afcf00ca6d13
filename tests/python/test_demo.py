"""The embedded demo models (models/demo, scripts/experiments/train_demo.py): they load, have the documented sizes and
hashes, produce images through the CLI, and the detector classifies the Fashion-MNIST test set."""

import hashlib
import json
import re
import zipfile

import numpy as np
import pytest
import torch
from cli import autoguide, ok, requires_bin
from conftest import ROOT

from autoguide_py import fmnist

DEMO = ROOT / 'models' / 'demo'
PRESETS = json.loads((ROOT / 'configs' / 'demo.json').read_text())['presets']
README = DEMO / 'README.md'
NETS = ['main', 'guide', 'uncond']
pytestmark = pytest.mark.skipif(not (DEMO / 'main.pt').exists(), reason='models/demo not trained')


def metadata(path):
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith('extra/autoguide.json'))
        return json.loads(z.read(name))


def readme_table():
    """The README's table rows: | file | parameters | bytes | sha256 |."""
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r'\|\s*`([\w.-]+)`\s*\|\s*([\d,]+|–)\s*\|\s*([\d,]+)\s*\|\s*`([0-9a-f]{64})`', line)
        if m:
            params = None if m.group(2) == '–' else int(m.group(2).replace(',', ''))
            rows[m.group(1)] = (params, int(m.group(3).replace(',', '')), m.group(4))
    return rows


def test_files_match_the_readme_and_fit_the_budget():
    rows = readme_table()
    files = [f'{n}.pt' for n in NETS] + ['guide-long.pt', 'detector.pt', 'fmnist-train-stats.npz', 'encoder.pt',
                                         'fmnist-train-stats-encoder.npz', 'guide-set.pt']
    assert sorted(files) == sorted(p.name for p in DEMO.iterdir() if p.name != 'README.md')
    total = 0
    for name in files:
        path = DEMO / name
        data = path.read_bytes()
        total += len(data)
        params, size, digest = rows[name]
        assert size == len(data), name
        assert hashlib.sha256(data).hexdigest() == digest, name
        if name in ('main.pt', 'guide.pt', 'guide-long.pt', 'uncond.pt'):
            assert metadata(path)['param_count'] == params, name
        elif name in ('detector.pt', 'encoder.pt'):
            assert sum(p.numel() for p in torch.jit.load(str(path)).parameters()) == params
        elif name == 'guide-set.pt':  # a snapshot set: 16 EMA snapshots of the guide (8 lengths x 2 profiles)
            assert metadata(path)['kind'] == 'snapshot_set' and len(metadata(path)['snapshots']) == 16
    assert total <= 50 * 2 ** 20


def test_roles_have_the_paper_relations():
    meta = {n: metadata(DEMO / f'{n}.pt') for n in NETS}
    assert meta['main']['label_dim'] == meta['guide']['label_dim'] == 10 and meta['uncond']['label_dim'] == 0
    for m in meta.values():
        assert (m['img_resolution'], m['img_channels']) == (32, 1)
    # The guide is smaller and trained for 1/8 of the main network's images; the long guide for 1/4.
    assert meta['guide']['param_count'] < meta['main']['param_count'] / 3
    assert meta['guide']['training_kimg'] * 8 == pytest.approx(meta['main']['training_kimg'], abs=8)
    long = metadata(DEMO / 'guide-long.pt')
    assert long['param_count'] == meta['guide']['param_count'] and long['label_dim'] == 10
    assert long['training_kimg'] * 4 == pytest.approx(meta['main']['training_kimg'], abs=8)


def test_every_preset_names_files_that_exist():
    # Nets, and for the presets tuned in one feature space, that space's detector and reference statistics.
    assert PRESETS
    for name, p in PRESETS.items():
        files = [p['net']] + [p[k] for k in ('gnet', 'detector', 'ref') if p.get(k)]
        for f in files:
            assert (ROOT / 'models' / f).is_file(), (name, f)
        if p.get('gnet'):
            assert p.get('detector') and p.get('ref'), f'{name}: a guided preset says which space chose its weight'


@requires_bin
@pytest.mark.parametrize('preset', sorted(PRESETS))
def test_presets_make_images(tmp_path, preset):
    ok('generate', '--preset', preset, '--models', ROOT / 'models', '--seeds', '0-3', '--steps', '8',
       '--outdir', tmp_path, '--npy', tmp_path / 'x.npy', '-q', cwd=ROOT)
    x = np.load(tmp_path / 'x.npy')
    assert x.shape == (4, 1, 32, 32) and np.isfinite(x).all()
    # Images, not noise or a constant: background near -1 at the borders, something brighter inside.
    assert x[:, :, :2, :].mean() < -0.8 and x[:, :, 8:24, 8:24].max(axis=(1, 2, 3)).min() > 0
    assert sorted(p.name for p in tmp_path.glob('*.png')) == [f'00000{i}.png' for i in range(4)]


@pytest.fixture(scope='module')
def detector():
    torch._C._set_graph_executor_optimize(False)
    return torch.jit.load(str(DEMO / 'detector.pt')).eval()


def test_detector_accuracy_on_the_test_set(detector):
    images, labels = fmnist.load('test')
    with torch.no_grad():
        pred = torch.cat([detector.classify(images[i:i + 1000]) for i in range(0, len(images), 1000)])
    accuracy = float((pred == labels).float().mean())
    assert accuracy >= 0.85
    assert f'{accuracy * 100:.2f}%' in README.read_text()


def test_reference_statistics_are_those_of_the_training_set(detector):
    stats = np.load(DEMO / 'fmnist-train-stats.npz')
    images, _ = fmnist.load('train')
    with torch.no_grad():
        feats = torch.cat([detector(images[i:i + 2000]) for i in range(0, 20000, 2000)]).double().numpy()
    assert stats['mu'].shape == (feats.shape[1],) and stats['sigma'].shape == (feats.shape[1],) * 2
    # A third of the set estimates the mean to well within the features' spread.
    assert np.abs(feats.mean(0) - stats['mu']).max() < 0.05 * feats.std(0).max()


@requires_bin
def test_fd_of_test_images_is_small_and_of_noise_large(tmp_path, detector):
    images, _ = fmnist.load('test')
    np.save(tmp_path / 'test.npy', images[:2000].numpy())
    noise = np.random.default_rng(0).integers(0, 256, (500, 1, 32, 32), dtype=np.uint8)
    np.save(tmp_path / 'noise.npy', noise)
    fds = {}
    for name in ('test', 'noise'):
        r = ok('fid', '--detector', DEMO / 'detector.pt', '--images', tmp_path / f'{name}.npy',
               '--ref', DEMO / 'fmnist-train-stats.npz', '--json')
        fds[name] = json.loads(r.stdout)['fd']
    assert fds['test'] < 0.05 * fds['noise']


def test_compare_preset_row_builds_its_guide_ema(tmp_path):
    """compare --preset with a snapshot-set guide builds the preset's EMA length, as generate --preset does."""
    from PIL import Image
    preset = 'demo-fmnist-autog-ema'
    common = ['--models', ROOT / 'models', '--seeds', '0-2', '--steps', '4', '-q']
    ok('generate', '--preset', preset, *common, '--outdir', tmp_path / 'gen', cwd=ROOT)
    ok('compare', '--preset', preset, *common, '--out', tmp_path / 'cmp.png', cwd=ROOT)
    row = json.loads((tmp_path / 'cmp.json').read_text())['rows'][0]
    assert row['label'].endswith(f", guide ema {PRESETS[preset]['gnet_ema']:g}"), row['label']
    grid = np.asarray(Image.open(tmp_path / 'cmp.png').convert('L'))
    tiles = grid[-32:, -3 * 32:]  # one row of three 32x32 tiles, right of and below the labels
    for i in range(3):
        want = np.asarray(Image.open(tmp_path / 'gen' / f'00000{i}.png').convert('L'))
        assert np.array_equal(tiles[:, 32 * i:32 * (i + 1)], want), i
