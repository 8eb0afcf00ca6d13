"""Sweep and compare on latent (ImageNet-512-style) nets, rows from presets, and the provenance of every
output: each setting's PNGs byte for byte against `autoguide generate` with the same nets, weight and seeds;
the FD measured on the decoded RGB images against `autoguide fid` on generate's folder; preset rows resolved
in a models folder holding fixture nets under the presets' file names; bad input refused with one line."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import model_fixtures
from autoguide_py import vae as V
from autoguide_py.export import export_precond
from cli import autoguide, ok, requires_bin
from test_sweep_compare import IntLinear, bad, png_parameters

pytestmark = requires_bin

FAST = ['--steps', 3, '--batch', 2, '--device', 'cpu', '--threads', 1]
SEEDS, SEED_LIST = '0,1,5', [0, 1, 5]
IMG = 8 * model_fixtures.RES  # the small VAE upsamples 8x


@pytest.fixture(scope='module')
def latent(tmp_path_factory):
    """Latent main, guide (autoguidance) and uncond (CFG) nets on 4x8x8 latents, a small SD VAE, a detector
    on the decoded 3x64x64 images and reference statistics for it."""
    d = tmp_path_factory.mktemp('latent_rows')
    torch.set_num_threads(1)
    files = {}
    for role, seed, label_dim in (('main', 5, model_fixtures.LABELS), ('guide', 6, model_fixtures.LABELS),
                                  ('uncond', 7, 0)):
        net, meta = model_fixtures.latent_net(seed=seed, label_dim=label_dim)
        files[role] = d / f'latent-{role}.pt'
        export_precond(net, str(files[role]), meta)
    files['vae'] = d / 'vae.pt'
    V.export_vae(model_fixtures.small_vae(), str(files['vae']))
    files['vae3'] = d / 'vae3.pt'
    V.export_vae(model_fixtures.small_vae(latent_channels=3), str(files['vae3']))
    files['detector'] = d / 'det.pt'
    torch.jit.script(IntLinear(3 * IMG * IMG, 3)).save(str(files['detector']))
    rng = np.random.default_rng(1)
    np.save(d / 'ref.npy', rng.integers(0, 256, size=(30, 3, IMG, IMG), dtype=np.uint8))
    files['ref'] = d / 'ref.npz'
    ok('ref', '--detector', files['detector'], '--images', d / 'ref.npy', '--out', files['ref'], '--device', 'cpu',
       '-q')
    return files


def generate(latent, outdir, *args, seeds=SEEDS):
    ok('generate', '--net', latent['main'], '--vae', latent['vae'], '--seeds', seeds, '--outdir', outdir,
       '--quiet', *FAST, *args)
    return outdir


def pixels(path):
    return np.asarray(Image.open(path).convert('RGB'))


def tiles(grid, rows, cols, res=IMG):
    h, w = rows * res, cols * res
    assert grid.shape[0] > h and grid.shape[1] > w, 'no label margins'
    return grid[-h:, -w:].reshape(rows, res, cols, res, 3).transpose(0, 2, 1, 3, 4)


def fid(latent, folder):
    r = ok('fid', '--json', '--detector', latent['detector'], '--ref', latent['ref'], '--images', folder,
           '--device', 'cpu', '--threads', 1)
    return json.loads(r.stdout)['fd']


def test_latent_sweep_pngs_equal_generate_byte_for_byte_and_fd_on_decoded_images(latent, tmp_path):
    out = tmp_path / 'sweep'
    # Six samples for three features: full-rank covariances, so the FD is well conditioned.
    seeds, seed_list = '0-4,9', [0, 1, 2, 3, 4, 9]
    ok('sweep', '--net', latent['main'], '--gnet', f"{latent['guide']},{latent['uncond']}", '--guidance', '1.5,2',
       '--vae', latent['vae'], '--seeds', seeds, '--detector', latent['detector'], '--ref', latent['ref'],
       '--outdir', out, '--quiet', *FAST)
    results = json.loads((out / 'results.json').read_text())
    rows = results['settings']
    assert [(r['guide'], r['w'], r['mode']) for r in rows] == [
        ('latent-guide.pt', 1.5, 'autoguidance'), ('latent-guide.pt', 2.0, 'autoguidance'),
        ('latent-uncond.pt', 1.5, 'cfg'), ('latent-uncond.pt', 2.0, 'cfg')]
    assert results['dtype'] == 'fp32' and results['vae'] == str(latent['vae'])
    for r in rows:
        role = 'guide' if r['mode'] == 'autoguidance' else 'uncond'
        ref = generate(latent, tmp_path / r['folder'], '--gnet', latent[role], '--guidance', r['w'], seeds=seeds)
        for s in seed_list:
            ours, theirs = out / r['folder'] / f'{s:06d}.png', ref / f'{s:06d}.png'
            assert ours.read_bytes() == theirs.read_bytes(), (r['folder'], s)
        assert pixels(out / r['folder'] / '000000.png').shape == (IMG, IMG, 3)  # decoded, not latents
        assert png_parameters(out / r['folder'] / '000000.png')['vae'] == 'vae.pt'
        # The detector sees 3x64x64 RGB images (it could not even run on 4x8x8 latents).
        assert r['fd'] == pytest.approx(fid(latent, ref), rel=1e-9, abs=0), r['folder']
    assert len({r['fd'] for r in rows}) == 4


def test_latent_compare_rows_equal_generate(latent, tmp_path):
    out = tmp_path / 'cmp.png'
    ok('compare', '--net', latent['main'], '--gnet', latent['guide'], '--ag', 2, '--uncond', latent['uncond'],
       '--cfg', 1.5, '--alpha', 0.5, '--mix', 1.8, '--vae', latent['vae'], '--seeds', SEEDS, '--out', out,
       '--quiet', *FAST)
    cases = [[], ['--gnet', latent['uncond'], '--guidance', 1.5], ['--gnet', latent['guide'], '--guidance', 2],
             ['--gnet', latent['guide'], '--uncond', latent['uncond'], '--alpha', 0.5, '--guidance', 1.8]]
    t = tiles(pixels(out), len(cases), len(SEED_LIST))
    for i, args in enumerate(cases):
        ref = generate(latent, tmp_path / f'gen{i}', *args)
        for j, s in enumerate(SEED_LIST):
            assert np.array_equal(t[i, j], pixels(ref / f'{s:06d}.png')), (i, s)
    assert not np.array_equal(t[0], t[2])


@pytest.fixture
def models(latent, tmp_path):
    """A models folder holding the fixture nets under the file names of three ImageNet-512 presets."""
    m = tmp_path / 'models'
    m.mkdir()
    for name, role in (('edm2-img512-s-2147483-0.130.pt', 'main'), ('edm2-img512-s-2147483-0.025.pt', 'main'),
                       ('edm2-img512-s-2147483-0.070.pt', 'main'), ('edm2-img512-xs-uncond-2147483-0.025.pt', 'uncond'),
                       ('edm2-img512-xs-0134217-0.125.pt', 'guide'), ('sd-vae-ft-mse.pt', 'vae')):
        os.symlink(latent[role], m / name)
    return m


PRESETS = ['edm2-img512-s-fid', 'edm2-img512-s-guid-fid', 'edm2-img512-s-autog-fid']


def test_compare_preset_rows_are_labelled_and_equal_generate_with_the_preset(latent, models, tmp_path):
    out = tmp_path / 'cmp.png'
    args = [a for p in PRESETS for a in ('--preset', p)]
    r = ok('compare', *args, '--models', models, '--seeds', SEEDS, '--out', out, '--detector', latent['detector'],
           '--ref', latent['ref'], '--quiet', *FAST)
    printed = [line.split('\t') for line in r.stdout.strip().splitlines() if '\t' in line]  # then verdicts
    assert [p[0] for p in printed] == [
        'edm2-img512-s-fid: none w=1.00, net edm2-img512-s-2147483-0.130',
        'edm2-img512-s-guid-fid: cfg w=1.40, net edm2-img512-s-2147483-0.025',
        'edm2-img512-s-autog-fid: autoguidance w=2.10, net edm2-img512-s-2147483-0.070']
    t = tiles(pixels(out), len(PRESETS), len(SEED_LIST))
    for i, preset in enumerate(PRESETS):
        ref = tmp_path / preset
        ok('generate', '--preset', preset, '--models', models, '--seeds', SEEDS, '--outdir', ref, '--quiet', *FAST)
        for j, s in enumerate(SEED_LIST):
            assert np.array_equal(t[i, j], pixels(ref / f'{s:06d}.png')), (preset, s)
        assert float(printed[i][1].split(' ')[1]) == pytest.approx(fid(latent, ref), rel=1e-8, abs=0)


def test_sweep_preset_uses_its_nets_and_vae(latent, models, tmp_path):
    out = tmp_path / 'sweep'
    ok('sweep', '--preset', 'edm2-img512-s-autog-fid', '--models', models, '--guidance', '1.5,2.5', '--seeds', SEEDS,
       '--outdir', out, '--quiet', *FAST)
    results = json.loads((out / 'results.json').read_text())
    assert results['preset'] == 'edm2-img512-s-autog-fid'
    assert results['net'] == str(models / 'edm2-img512-s-2147483-0.070.pt')
    for r in results['settings']:
        ref = tmp_path / f"gen-{r['w']}"
        ok('generate', '--preset', 'edm2-img512-s-autog-fid', '--models', models, '--guidance', r['w'], '--seeds',
           SEEDS, '--outdir', ref, '--quiet', *FAST)
        for s in SEED_LIST:
            assert (out / r['folder'] / f'{s:06d}.png').read_bytes() == (ref / f'{s:06d}.png').read_bytes()


def test_bad_latent_and_preset_input_is_one_line_and_writes_nothing(latent, models, tmp_path):
    out, grid = tmp_path / 'out', tmp_path / 'cmp.png'
    sweep = ['sweep', '--net', latent['main'], '--gnet', latent['guide'], '--guidance', '2', '--outdir', out, *FAST]
    compare = ['compare', '--net', latent['main'], '--gnet', latent['guide'], '--ag', 2, '--out', grid, *FAST]
    for cmd in (sweep, compare):
        bad(*cmd, message='makes SD-VAE latents; to write images give --vae VAE.pt (convert stabilityai/sd-vae-ft-mse '
                          'with scripts/export_vae.py')
        bad(*cmd, '--vae', latent['vae3'], message='decodes 3-channel latents')
        bad(*cmd, '--vae', latent['main'], message='is not a VAE decoder')
    rgb_net = tmp_path / 'rgb.pt'
    export_precond(model_fixtures.random_net(model_fixtures.LABELS, 16, 1), str(rgb_net))
    bad('compare', '--net', rgb_net, '--gnet', rgb_net, '--ag', 2, '--vae', latent['vae'], '--out', grid, *FAST,
        message='drop --vae')
    bad('sweep', '--preset', PRESETS[2], '--net', latent['main'], '--models', models, '--outdir', out, *FAST,
        message='--preset names the nets')
    bad('compare', '--preset', PRESETS[2], '--net', latent['main'], '--models', models, '--out', grid, *FAST,
        message='--preset rows bring their own nets')
    bad('sweep', '--preset', PRESETS[0], '--models', models, '--outdir', out, *FAST, message='has no guiding net')
    empty = tmp_path / 'empty'
    empty.mkdir()
    line = bad('compare', *[a for p in PRESETS for a in ('--preset', p)], '--models', empty, '--out', grid, *FAST,
               message='scripts/get_edm2.sh ' + ' '.join(PRESETS))
    for f in ('edm2-img512-s-2147483-0.130.pt', 'edm2-img512-s-2147483-0.025.pt', 'edm2-img512-xs-uncond-2147483-0.025.pt',
              'edm2-img512-s-2147483-0.070.pt', 'edm2-img512-xs-0134217-0.125.pt'):
        assert f'{empty / f} (scripts/export_edm2.py {f[:-3]}.pkl {empty / f})' in line
    assert line.count(str(empty / 'sd-vae-ft-mse.pt') + ' (') == 1  # shared by the presets, listed once
    bad('sweep', '--preset', PRESETS[2], '--models', empty, '--outdir', out, *FAST,
        message='edm2-img512-xs-0134217-0.125.pt (scripts/export_edm2.py')
    assert not out.exists() and not grid.exists()
    assert sorted(os.listdir(tmp_path)) == ['empty', 'models', 'rgb.pt']


def test_metadata_records_the_precision_used_not_auto(latent, tmp_path):
    out = generate(latent, tmp_path / 'gen')  # --dtype auto on the CPU: EDM2 computes in fp32
    assert png_parameters(out / '000000.png')['dtype'] == 'fp32'
    assert json.loads((out / 'manifest.json').read_text())['dtype'] == 'fp32'
    ok('generate', '--net', latent['main'], '--vae', latent['vae'], '--seeds', 0, '--dtype', 'bf16', '--outdir',
       tmp_path / 'bf16', '--quiet', *FAST)
    assert png_parameters(tmp_path / 'bf16' / '000000.png')['dtype'] == 'bf16'
    assert png_parameters(tmp_path / 'bf16' / '000000.png')['vae_dtype'] == 'fp32'


def test_shared_sampling_options_are_checked_alike_before_any_net_is_loaded(tmp_path):
    missing = tmp_path / 'missing.pt'  # never opened: the option is refused first
    commands = (['generate', '--net', missing, '--outdir', tmp_path / 'o'],
                ['sweep', '--net', missing, '--gnet', missing, '--outdir', tmp_path / 'o'],
                ['compare', '--net', missing, '--gnet', missing, '--ag', 2, '--out', tmp_path / 'c.png'])
    for cmd in commands:
        bad(*cmd, '--batch', 0, message='--batch must be at least 1 (got 0)')
        bad(*cmd, '--vae-batch', -2, message='--vae-batch must be at least 1 (got -2)')
        bad(*cmd, '--steps', 'x', message='--steps')
        bad(*cmd, '--sampler', 'ddim', message='ddim')
        bad(*cmd, '--dtype', 'fp64', message="unknown --dtype 'fp64'")
        bad(*cmd, '--interval-sigma', '3,1', message='interval')
    assert os.listdir(tmp_path) == []
