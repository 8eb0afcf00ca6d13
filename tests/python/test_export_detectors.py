"""scripts/export_detectors.py: detector files with EDM2's preprocessing, built offline from stand-in networks.

The real Inception-v3 and DINOv2 weights need internet; here a small TorchScript module with NVIDIA's
Inception interface and a local "dinov2 repository" with a tiny ViT stand in for them. The ViT has
facebookresearch/dinov2's attention layout (fused qkv, heads, Attention/MemEffAttention calling
F.scaled_dot_product_attention), so the op torch 1.13 lacks is met here as with the real code;
scripts/dev/check_real_dinov2.sh runs the same comparisons on the real repository.
"""

import contextlib
import hashlib
import importlib.util
import math
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from autoguide_py import detectors
from autoguide_py.errors import ExportError
from cli import ok, requires_bin

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'scripts' / 'export_detectors.py'

# EDM2 calculate_metrics.py, DINOv2Detector (written out here, not taken from the module under test).
EDM2_MEAN = [0.485, 0.456, 0.406]
EDM2_STD = [0.229, 0.224, 0.225]


def run_cli(*args, env=None):
    full_env = dict(os.environ, OMP_NUM_THREADS='1')
    full_env.update(env or {})
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=300, cwd=str(ROOT))


def assert_one_line_error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def files_in(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def uint8_images(shape, seed=0):
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# ----------------------------------------------------------------------------
# Stand-ins.


class StandInInception(torch.nn.Module):
    """NVIDIA's detector interface: uint8/float images in 0..255, resized and normalized inside."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=8)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, img: Tensor, return_features: bool = False) -> Tensor:
        x = img.to(torch.float32)
        x = F.interpolate(x, size=[299, 299], mode='bilinear', align_corners=False)
        x = (x - 128) / 128
        features = self.conv(x).relu().mean([2, 3])
        if return_features:
            return features
        return self.fc(features)


class NoFeaturesFlag(torch.nn.Module):
    def forward(self, img: Tensor) -> Tensor:
        return img.to(torch.float32).mean([2, 3])


HUBCONF = '''
import torch
from torch import nn

dependencies = ['torch']


class Attention(nn.Module):
    """facebookresearch/dinov2's attention layout: one fused qkv Linear, the heads split out of its output,
    torch.nn.functional.scaled_dot_product_attention looked up at call time, an output projection."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, is_causal=False):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = [t.transpose(1, 2) for t in torch.unbind(qkv, 2)]  # [B, heads, N, C / heads] each
        x = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=is_causal)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class MemEffAttention(Attention):
    """The class the repository's ViTs use; without xFormers it is its parent's computation."""

    def forward(self, x, attn_bias=None):
        if attn_bias is not None:
            raise AssertionError('the stand-in has no xFormers path')
        return super().forward(x)


class Block(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MemEffAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A DINOv2-shaped stand-in: 14x14 patches, a CLS token, attention blocks, normed CLS output."""

    def __init__(self, dim=16, num_heads=2, depth=2, patch=14, resolution=224):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (resolution // patch) ** 2, dim))
        self.blocks = nn.ModuleList([Block(dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), t], dim=1) + self.pos_embed
        for block in self.blocks:
            t = block(t)
        return self.norm(t)[:, 0]


def dinov2_vitl14(*, pretrained=True, **kwargs):
    if pretrained:
        import urllib.error
        raise urllib.error.URLError('stand-in repository: the released weights are not reachable')
    return TinyViT()
'''


@pytest.fixture(scope='module')
def inception_pt(tmp_path_factory):
    path = tmp_path_factory.mktemp('inception') / 'inception-2015-12-05.pt'
    torch.jit.save(torch.jit.script(StandInInception().eval()), str(path))
    return path


@pytest.fixture(scope='module')
def dinov2_repo(tmp_path_factory):
    """A local 'clone' whose hub entry builds TinyViT, plus a weights file for it."""
    folder = tmp_path_factory.mktemp('dinov2')
    repo = folder / 'dinov2'
    repo.mkdir()
    (repo / 'hubconf.py').write_text(HUBCONF)
    spec = importlib.util.spec_from_file_location('standin_hubconf', repo / 'hubconf.py')
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    torch.manual_seed(1)
    net = hub.TinyViT().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.5)  # large enough that attention is far from uniform
    weights = folder / 'dinov2_vitl14_pretrain.pth'
    torch.save(net.state_dict(), str(weights))
    return repo, weights, net


def edm2_dinov2_input(images, antialias=True):
    """EDM2's DINOv2Detector preprocessing, grey repeated to RGB first."""
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        x = torch.cat([x, x, x], dim=1)
    x = F.interpolate(x, size=(224, 224), mode='bicubic', antialias=antialias)
    x = x / 255
    x = x - torch.tensor(EDM2_MEAN).reshape(1, -1, 1, 1)
    return x / torch.tensor(EDM2_STD).reshape(1, -1, 1, 1)


def einsum_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """torch's scaled_dot_product_attention for the stand-in's call, written independently of plain_attention.py."""
    assert attn_mask is None and dropout_p == 0 and not is_causal
    weights = torch.einsum('bhid,bhjd->bhij', q, k) / (math.sqrt(q.shape[-1]) if scale is None else 1 / scale)
    return torch.einsum('bhij,bhjd->bhid', weights.softmax(dim=-1), v)


@contextlib.contextmanager
def attention_op(function):
    """F.scaled_dot_product_attention is `function` inside the block, as it was (or absent) after it."""
    saved = getattr(F, 'scaled_dot_product_attention', None)
    F.scaled_dot_product_attention = function
    try:
        yield
    finally:
        if saved is None:
            del F.scaled_dot_product_attention
        else:
            F.scaled_dot_product_attention = saved


def reference_features(net, images):
    """The stand-in's own forward on EDM2's preprocessing; torch's attention op where it has one."""
    op = getattr(F, 'scaled_dot_product_attention', einsum_attention)
    with torch.no_grad(), attention_op(op):
        return net(edm2_dinov2_input(images))


def relative_error(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


# ----------------------------------------------------------------------------
# Inception-v3.


def test_inception_from_file(inception_pt, out_dir):
    r = run_cli('--out-dir', out_dir, '--which', 'inception', '--inception-file', inception_pt)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('exported inception-v3 -> ') and '8 features' in lines[0]
    assert files_in(out_dir) == ['inception.pt']

    model = torch.jit.load(str(out_dir / 'inception.pt'))
    reference = StandInInception().eval()
    for shape in ([2, 1, 32, 32], [3, 3, 64, 64]):
        x = uint8_images(shape)
        got = model(x)
        assert got.dtype == torch.float32 and got.shape == (shape[0], 8)
        rgb = x.expand(-1, 3, -1, -1) if shape[1] == 1 else x
        with torch.no_grad():
            assert torch.equal(got, reference(rgb, return_features=True))
    # The stand-in is not constant, so the equalities above compare something.
    assert not torch.equal(model(uint8_images([1, 3, 16, 16])), model(uint8_images([1, 3, 16, 16], seed=5)))

    assert detectors.read_detector_metadata(str(out_dir / 'inception.pt')) == {
        'format_version': 1, 'kind': 'detector', 'name': 'inception-v3', 'metric': 'fid', 'feature_dim': 8,
        'source': 'inception-2015-12-05.pt', 'source_sha256': sha256(inception_pt), 'exporter': 'autoguide 0.1.0'}


def test_inception_download(inception_pt, out_dir):
    url = inception_pt.as_uri()
    r = run_cli('--out-dir', out_dir, '--which', 'inception', '--inception-url', url, '-q')
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert files_in(out_dir) == ['inception.pt']
    meta = detectors.read_detector_metadata(str(out_dir / 'inception.pt'))
    assert meta['source'] == url and meta['source_sha256'] == sha256(inception_pt)


def test_inception_download_failure(tmp_path):
    out = tmp_path / 'new'
    r = run_cli('--out-dir', out, '--which', 'inception', '--inception-url', (tmp_path / 'absent.pt').as_uri())
    assert_one_line_error(r, 'cannot download', '--inception-file')
    assert not out.exists()


def test_inception_pickle_is_refused_unrun(tmp_path, out_dir):
    """A pickle (EDM2's inception-2015-12-05.pkl is one) is refused without running what it names."""
    canary = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return (Path.touch, (canary,))

    pkl = tmp_path / 'inception-2015-12-05.pkl'
    pkl.write_bytes(pickle.dumps({'detector': Payload()}, protocol=4))
    r = run_cli('--out-dir', out_dir, '--which', 'inception', '--inception-file', pkl)
    assert_one_line_error(r, 'inception-2015-12-05.pkl is a Python pickle', "'pathlib.Path.touch'",
                          detectors.INCEPTION_URL)
    assert not canary.exists() and files_in(out_dir) == []


@pytest.mark.parametrize('case', ['state_dict', 'no_flag', 'garbage', 'empty', 'missing'])
def test_inception_bad_inputs(case, tmp_path, out_dir):
    path = tmp_path / 'inception.pth'
    if case == 'state_dict':
        torch.save(StandInInception().state_dict(), str(path))
        want = 'not a TorchScript module'
    elif case == 'no_flag':
        torch.jit.save(torch.jit.script(NoFeaturesFlag()), str(path))
        want = 'no return_features argument'
    elif case == 'garbage':
        path.write_bytes(b'not a model at all')
        want = 'not a TorchScript file'
    elif case == 'empty':
        path.write_bytes(b'')
        want = 'is empty'
    else:
        want = 'Inception file not found'
    r = run_cli('--out-dir', out_dir, '--which', 'inception', '--inception-file', path)
    assert_one_line_error(r, want)
    assert files_in(out_dir) == []


# ----------------------------------------------------------------------------
# DINOv2.


def test_dinov2_preprocessing_is_edm2s(tmp_path):
    """With a backbone that only flattens, the detector's output is its input: EDM2's preprocessing."""
    path = tmp_path / 'identity.pt'
    detector = detectors.build_dinov2_detector(torch.nn.Flatten())
    detectors.save_detector(detector, str(path), detectors.detector_metadata('identity', 'none', 0, 'test', None))
    model = torch.jit.load(str(path))
    for shape in ([2, 1, 32, 32], [3, 3, 64, 64], [1, 3, 300, 260], [2, 3, 224, 224]):
        x = uint8_images(shape, seed=shape[2])
        got = model(x)
        assert got.dtype == torch.float32 and got.shape == (shape[0], 3 * 224 * 224)
        want = edm2_dinov2_input(x).flatten(1)
        assert (got - want).abs().max().item() <= 1e-5, shape
    # The comparison would notice a resize without antialiasing (it matters when shrinking).
    x = uint8_images([1, 3, 300, 260], seed=300)
    assert (edm2_dinov2_input(x, antialias=False).flatten(1) - model(x)).abs().max().item() > 1e-2


def test_dinov2_rejects_other_channel_counts():
    model = detectors.build_dinov2_detector(torch.nn.Flatten())
    with pytest.raises(torch.jit.Error, match='expected 1 or 3 image channels, got 2'):
        model(uint8_images([1, 2, 8, 8]))


# Colour and grey, each at two batch sizes (and sizes that need shrinking and enlarging to 224).
FEATURE_CASES = ([1, 3, 64, 48], [4, 3, 300, 260], [1, 1, 32, 32], [4, 1, 240, 240])


def test_dinov2_from_local_repo(dinov2_repo, out_dir):
    repo, weights, net = dinov2_repo
    r = run_cli('--out-dir', out_dir, '--which', 'dinov2', '--dinov2-repo', repo, '--dinov2-weights', weights)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('exported dinov2-vitl14 -> ') and '16 features' in lines[0]
    assert files_in(out_dir) == ['dinov2.pt']

    model = torch.jit.load(str(out_dir / 'dinov2.pt'))
    for shape in FEATURE_CASES:
        x = uint8_images(shape, seed=7)
        got = model(x)
        assert got.dtype == torch.float32 and got.shape == (shape[0], 16)
        assert relative_error(got, reference_features(net, x)) <= 1e-5, shape
    # No fused attention op in the file (LibTorch 1.13 would refuse to load it): matmul and softmax instead.
    # The file's code, which LibTorch compiles on load: softmax attention, no fused op. (Not the loaded graph:
    # whether it shows called functions inlined depends on a process-wide optimizer flag other tests turn off.)
    with zipfile.ZipFile(out_dir / 'dinov2.pt') as z:
        code = ''.join(z.read(n).decode() for n in z.namelist() if n.endswith('.py'))
    assert 'scaled_dot_product_attention' not in code and 'softmax(' in code

    assert detectors.read_detector_metadata(str(out_dir / 'dinov2.pt')) == {
        'format_version': 1, 'kind': 'detector', 'name': 'dinov2-vitl14', 'metric': 'fd_dinov2', 'feature_dim': 16,
        'source': f'dinov2_vitl14 from {repo} with weights dinov2_vitl14_pretrain.pth',
        'source_sha256': sha256(weights), 'exporter': 'autoguide 0.1.0'}


def test_dinov2_comparison_sees_attention(dinov2_repo):
    """The stand-in's attention matters: uniform attention would move its features far beyond the 1e-5 bound."""
    _, _, net = dinov2_repo
    x = uint8_images([4, 3, 64, 64], seed=7)
    with torch.no_grad(), attention_op(lambda q, k, v, **kwargs: v.mean(dim=-2, keepdim=True).expand_as(v)):
        uniform = net(edm2_dinov2_input(x))
    assert relative_error(uniform, reference_features(net, x)) > 1e-2


def test_dinov2_export_needs_the_fallback(dinov2_repo, monkeypatch):
    """Without plain attention the stand-in does not export: on torch 1.13 the op is missing; on torch >= 2 the
    trace would hold aten::scaled_dot_product_attention, which the graph check refuses."""
    _, _, net = dinov2_repo
    monkeypatch.setattr(detectors, 'plain_attention', lambda always=False: contextlib.nullcontext())
    if hasattr(F, 'scaled_dot_product_attention'):
        with pytest.raises(ExportError, match='aten::scaled_dot_product_attention'):
            detectors.build_dinov2_detector(net)
    else:
        with pytest.raises(AttributeError, match='scaled_dot_product_attention'):
            detectors.build_dinov2_detector(net)


def test_dinov2_trace_uses_plain_attention_where_the_op_exists(dinov2_repo):
    """torch >= 2, emulated: an op that must never be traced (it would be recorded as a fused op). The export
    still succeeds (the trace used plain attention), the trace check ran the op itself, and the op is back
    in place afterwards."""
    _, _, net = dinov2_repo
    calls = []

    def native(q, k, v, **kwargs):
        assert not torch.jit.is_tracing(), 'the native op was called while tracing'
        calls.append(q.shape[0])
        return einsum_attention(q, k, v, **kwargs)

    with attention_op(native):
        detector = detectors.build_dinov2_detector(net)
        assert F.scaled_dot_product_attention is native
    assert calls == [3, 3]  # two blocks, on the check batch of 3 images
    x = uint8_images([2, 3, 64, 64], seed=3)
    with torch.no_grad():
        assert relative_error(detector(x), reference_features(net, x)) <= 1e-5


def test_plain_attention_is_softmax_qk_v():
    """The fallback against the einsum formula, with the variants torch's op offers (mask, causal, scale)."""
    from autoguide_py.plain_attention import scaled_dot_product_attention as plain
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn([2, 3, 5, 4], generator=gen) for _ in range(3))
    torch.testing.assert_close(plain(q, k, v), einsum_attention(q, k, v), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(plain(q, k, v, scale=0.3), einsum_attention(q, k, v, scale=0.3), rtol=1e-6, atol=1e-6)
    causal = torch.ones([5, 5], dtype=torch.bool).tril()
    torch.testing.assert_close(plain(q, k, v, is_causal=True), plain(q, k, v, attn_mask=causal))
    # With a causal mask the first query sees only the first key: its output is the first value.
    torch.testing.assert_close(plain(q, k, v, is_causal=True)[..., 0, :], v[..., 0, :])
    additive = torch.zeros([5, 5]).masked_fill(~causal, float('-inf'))
    torch.testing.assert_close(plain(q, k, v, attn_mask=additive), plain(q, k, v, attn_mask=causal))


@requires_bin
def test_dinov2_file_runs_in_autoguide_ref(dinov2_repo, tmp_path):
    """The exported file in the C++ tool: `autoguide ref --features-out` on PNGs equals the stand-in's forward."""
    from PIL import Image
    repo, weights, net = dinov2_repo
    r = run_cli('--out-dir', tmp_path, '--which', 'dinov2', '--dinov2-repo', repo, '--dinov2-weights', weights, '-q')
    assert r.returncode == 0, r.stderr
    images = {'colour': uint8_images([5, 3, 40, 36], seed=11), 'grey': uint8_images([5, 1, 40, 36], seed=12)}
    for kind, x in images.items():
        folder = tmp_path / kind
        folder.mkdir()
        for i, img in enumerate(x):
            pixels = img.permute(1, 2, 0).numpy()
            Image.fromarray(pixels[..., 0] if kind == 'grey' else pixels).save(folder / f'{i:04d}.png')
        features = tmp_path / f'{kind}.npy'
        ok('ref', '--detector', tmp_path / 'dinov2.pt', '--images', folder, '--out', tmp_path / f'{kind}.npz',
           '--features-out', features, '--batch', 2, '--device', 'cpu', '--threads', 1, '-q')
        got = torch.from_numpy(np.load(features))
        assert relative_error(got, reference_features(net, x)) <= 1e-5, kind


def _other_hub_repo(tmp_path):
    """A torch.hub repository, but not dinov2's: its hubconf has no dinov2_vitl14."""
    other = tmp_path / 'other_hub'
    other.mkdir()
    (other / 'hubconf.py').write_text("dependencies = ['torch']\n\ndef resnet18(pretrained=False):\n    return None\n")
    return other


def _weights_with_wrong_shape(net, path):
    state = dict(net.state_dict())
    state['blocks.1.attn.qkv.weight'] = torch.zeros(24, 16)  # 24 = 3 x 8: a ViT of half the width
    torch.save(state, str(path))
    return path


def _truncated_weights(weights, path):
    data = Path(weights).read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    return path


@pytest.mark.parametrize('case', ['missing_weights', 'missing_repo', 'not_a_repo', 'other_hub_repo', 'foreign_weights',
                                  'wrong_shape', 'truncated', 'hub_entry_fails', 'import_fails'])
def test_dinov2_bad_inputs(case, dinov2_repo, inception_pt, tmp_path, out_dir):
    """Also asked for inception.pt, which must not be written either: all inputs are read before any output."""
    repo, weights, net = dinov2_repo
    args = ['--dinov2-repo', repo, '--dinov2-weights', weights]
    if case == 'missing_weights':
        args[3] = tmp_path / 'absent.pth'
        want = ['DINOv2 weights file not found', 'absent.pth']
    elif case == 'missing_repo':
        args[1] = tmp_path / 'no-such-clone'
        want = ['DINOv2 repository not found', 'no-such-clone']
    elif case == 'not_a_repo':
        args[1] = tmp_path
        want = ['is not a clone of facebookresearch/dinov2', 'no hubconf.py']
    elif case == 'other_hub_repo':
        args[1] = _other_hub_repo(tmp_path)
        want = ['other_hub is not a clone of facebookresearch/dinov2', 'has no dinov2_vitl14']
    elif case == 'foreign_weights':
        args[3] = tmp_path / 'other.pth'
        torch.save({'head.weight': torch.zeros(4, 3)}, str(args[3]))
        want = ['do not fit dinov2_vitl14', 'missing', 'unexpected head.weight']
    elif case == 'wrong_shape':
        args[3] = _weights_with_wrong_shape(net, tmp_path / 'narrow.pth')
        want = ['narrow.pth do not fit dinov2_vitl14',
                'wrong shape blocks.1.attn.qkv.weight (24, 16) (expected (48, 16))']
    elif case == 'truncated':
        args[3] = _truncated_weights(weights, tmp_path / 'cut.pth')
        want = ['cut.pth is truncated or corrupt']
    elif case == 'hub_entry_fails':
        args = args[:2]  # no weights: the entry point tries to download them
        want = ['cannot load dinov2_vitl14 from', 'URLError', 'not reachable']
    else:
        broken = tmp_path / 'broken'
        broken.mkdir()
        (broken / 'hubconf.py').write_text('import dinov2_layers_that_are_not_there\n' + HUBCONF)
        args[1] = broken
        want = ['cannot load dinov2_vitl14 from', 'ModuleNotFoundError']
    r = run_cli('--out-dir', out_dir, '--inception-file', inception_pt, *args)
    assert_one_line_error(r, *want)
    assert files_in(out_dir) == []


def test_dinov2_weights_are_never_unpickled(dinov2_repo, tmp_path, out_dir):
    """A weights file whose pickle names a callable is refused by the restricted reader; nothing in it runs."""
    repo, _, net = dinov2_repo
    canary = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return (Path.touch, (canary,))

    hostile = tmp_path / 'dinov2_vitl14_pretrain.pth'
    torch.save({**net.state_dict(), 'extra': Payload()}, str(hostile))
    r = run_cli('--out-dir', out_dir, '--which', 'dinov2', '--dinov2-repo', repo, '--dinov2-weights', hostile)
    assert_one_line_error(r, 'refusing to load dinov2_vitl14_pretrain.pth', 'nothing in the file was executed')
    assert not canary.exists() and files_in(out_dir) == []


def test_dinov2_hub_unreachable(tmp_path):
    """Without --dinov2-repo the code comes from torch.hub; no network gives one line with the offline way out."""
    out = tmp_path / 'out'
    dead_proxy = 'http://127.0.0.1:9'
    env = {'TORCH_HOME': str(tmp_path / 'torch'), 'https_proxy': dead_proxy, 'HTTPS_PROXY': dead_proxy,
           'http_proxy': dead_proxy, 'HTTP_PROXY': dead_proxy, 'no_proxy': '', 'NO_PROXY': ''}
    r = run_cli('--out-dir', out, '--which', 'dinov2', env=env)
    assert_one_line_error(r, 'cannot load dinov2_vitl14 from facebookresearch/dinov2:main', '--dinov2-repo')
    assert not out.exists()


def test_which_is_checked(out_dir):
    r = run_cli('--out-dir', out_dir, '--which', 'inception,clip')
    assert_one_line_error(r, '--which', 'inception, dinov2')
    assert files_in(out_dir) == []
