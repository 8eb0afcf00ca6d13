"""The feature detectors of EDM2's metrics as TorchScript files for `autoguide ref` / `autoguide fid`.

A detector file maps uint8 images [N,C,H,W] (C = 1 or 3, any size) to float features [N,D], with
the resizing and normalization of NVlabs/edm2 calculate_metrics.py inside it:

- FID, Inception-v3 (D = 2048): EDM2 calls NVIDIA's detector as `detector(x, return_features=True)`
  on uint8 RGB; the network resizes to 299x299 and normalizes by itself. Our wrapper only turns
  grey into RGB and makes that call.
- FD_DINOv2, ViT-L/14 (D = 1024): uint8 -> float32, `interpolate(size=(224, 224), mode='bicubic',
  antialias=True)` (EDM2's default resize_mode 'torch'), / 255, minus the ImageNet mean, divided
  by the ImageNet std, then the model's output (the normed CLS token).

Why not EDM2's inception-2015-12-05.pkl: torch cannot pickle a ScriptModule (pickle.dumps
raises), so a pickle that holds a network necessarily names Python classes that pickle.load
constructs by running their code; NVIDIA's pickles carry that code as source embedded through
torch_utils.persistence and exec it. A restricted unpickler (like edm2_unpickler's) can recover the
tensors but not the network's forward(); rebuilding NVIDIA's port of the TF graph from tensors
alone would be a re-implementation that cannot be checked against the original offline. So the
.pkl is refused (nothing in it is run; the message names the first Python global it refers to),
and the input is NVIDIA's TorchScript release of the same detector, `inception-2015-12-05.pt`
(published with StyleGAN2-ADA, also used by clean-fid), read with torch.jit.load: a TorchScript
archive holds TorchScript code for the TorchScript interpreter, never Python code.

DINOv2 comes from torch.hub (facebookresearch/dinov2, as EDM2 loads it) or from a local clone of
that repository; loading it imports the repository's Python code, as EDM2 does. Its weights may
come from a local file, read with the weights-only loader. The backbone is traced at its fixed
224x224 input; the wrapper around it is scripted, so inputs of any size and channel count work. The
repository computes attention with F.scaled_dot_product_attention, which torch 1.13 lacks and which a
torch >= 2 trace would record as an op LibTorch 1.13 cannot load: plain_attention.py supplies matmul +
softmax where the op is missing and always while tracing.
"""

import collections
import contextlib
import http.client
import io
import json
import os
import pickle
import sys
import tempfile
import urllib.parse
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ExportError
from .export import (EXPORTER, FORMAT_VERSION, METADATA_FILE, CliParser, describe_names, format_mib,
                     run_reporting_errors, save_model_file, sha256_file)
from .plain_attention import check_no_fused_attention, plain_attention
from .restricted_unpickler import global_name
from .zip_checkpoint import load_torch_checkpoint

INCEPTION_URL = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt'
DINOV2_HUB_REPO = 'facebookresearch/dinov2:main'
DINOV2_MODEL = 'dinov2_vitl14'
DINOV2_RESOLUTION = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_FILES = collections.OrderedDict(inception='inception.pt', dinov2='dinov2.pt')


# ----------------------------------------------------------------------------
# The detector modules (scripted; their forward is what the C++ side calls).


def to_rgb(images: Tensor) -> Tensor:
    """[N,1,H,W] -> [N,3,H,W] by repeating the channel; [N,3,H,W] as is; anything else is an error."""
    if images.dim() != 4:
        raise ValueError(f'expected images [N,C,H,W], got {images.dim()} dimensions')
    channels = images.shape[1]
    if channels == 1:
        return images.repeat(1, 3, 1, 1)
    if channels != 3:
        raise ValueError(f'expected 1 or 3 image channels, got {channels}')
    return images


class InceptionDetector(torch.nn.Module):
    """FID features [N,2048]: NVIDIA's Inception-v3 called the way EDM2 calls it."""

    def __init__(self, inception):
        super().__init__()
        self.inception = inception

    def forward(self, images: Tensor) -> Tensor:
        # The network converts to float, resizes to 299x299 and normalizes by itself.
        return self.inception(to_rgb(images), return_features=True)


class DINOv2Detector(torch.nn.Module):
    """FD_DINOv2 features: EDM2's DINOv2Detector preprocessing (resize_mode 'torch') + the backbone."""

    def __init__(self, backbone, resolution: int = DINOV2_RESOLUTION):
        super().__init__()
        self.backbone = backbone
        self.resolution = resolution
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN, dtype=torch.float32).reshape(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(IMAGENET_STD, dtype=torch.float32).reshape(1, 3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = to_rgb(images).to(torch.float32)
        # Resized in the 0..255 range, then scaled: the order EDM2 uses.
        x = F.interpolate(x, size=[self.resolution, self.resolution], mode='bicubic', antialias=True)
        x = x / 255
        x = (x - self.mean) / self.std
        return self.backbone(x)


# ----------------------------------------------------------------------------
# Inception-v3.


class _GlobalFound(Exception):
    def __init__(self, name):
        super().__init__(name)
        self.name = name


class _StopAtFirstGlobal(pickle.Unpickler):
    """Reads a pickle only up to its first reference to a Python global, which is reported, not imported."""

    def find_class(self, module, name):
        raise _GlobalFound(global_name(module, name))

    def persistent_load(self, pid):
        raise _GlobalFound(None)


def _first_global(path):
    try:
        with open(path, 'rb') as f:
            _StopAtFirstGlobal(f).load()
    except _GlobalFound as e:
        return e.name
    except Exception:  # a diagnostic only: a corrupt pickle is refused all the same
        return None
    return None


def _check_input_file(path, what):
    if not os.path.exists(path):
        raise ExportError(f'{what} not found: {path}')
    if os.path.isdir(path):
        raise ExportError(f'{what} is a directory, not a file: {path}')


def load_inception(path):
    """NVIDIA's TorchScript Inception-v3 (inception-2015-12-05.pt), on the CPU in eval mode."""
    name = os.path.basename(path)
    _check_input_file(path, 'Inception file')
    try:
        with open(path, 'rb') as f:
            head = f.read(4)
    except OSError as e:
        raise ExportError(f'cannot read {path}: {e.strerror}') from None
    if not head:
        raise ExportError(f'{name} is empty; download it again')
    if head[0] == 0x80:
        first = _first_global(path)
        names = f" (first '{first}')" if first else ''
        raise ExportError(
            f'{name} is a Python pickle, not TorchScript: loading it would run code it names{names}, which '
            f"autoguide never does (nothing in it was run). EDM2's inception-2015-12-05.pkl is such a file; use "
            f"NVIDIA's TorchScript release of the same detector instead: leave out --inception-file to download "
            f'{INCEPTION_URL}, or pass that inception-2015-12-05.pt')
    if head != b'PK\x03\x04':
        raise ExportError(f'{name} is not a TorchScript file (expected a zip archive such as '
                          f"NVIDIA's inception-2015-12-05.pt)")
    try:
        net = torch.jit.load(path, map_location='cpu')
    except Exception as e:  # torch reports every kind of unreadable archive as a RuntimeError of its own
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f'{name} is not a TorchScript module ({detail}); a torch.save state dict such as '
                          f"pytorch-fid's pt_inception-2015-12-05-6726825d.pth holds weights without the network, "
                          f"use NVIDIA's inception-2015-12-05.pt") from None
    arguments = [a.name for a in net.forward.schema.arguments]
    if 'return_features' not in arguments:
        raise ExportError(f'{name} is TorchScript, but its forward({", ".join(arguments[1:])}) has no '
                          f"return_features argument; expected NVIDIA's inception-2015-12-05.pt")
    return net.eval()


def download(url, folder, progress=False):
    """Fetch url into folder; returns the file's path. ExportError (with the offline way out) on failure."""
    base = os.path.basename(urllib.parse.urlparse(url).path) or 'download'
    dst = os.path.join(folder, base)
    try:
        torch.hub.download_url_to_file(url, dst, progress=progress)
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError and HTTPError are OSErrors
        reason = getattr(e, 'reason', None) or getattr(e, 'strerror', None) or str(e) or type(e).__name__
        raise ExportError(f'cannot download {url}: {str(reason).strip().splitlines()[0]}; on a machine without '
                          f'internet, download it elsewhere and pass --inception-file') from None
    return dst


def build_inception_detector(inception):
    """The scripted InceptionDetector around a (TorchScript) Inception-v3."""
    return torch.jit.script(InceptionDetector(inception).eval())


# ----------------------------------------------------------------------------
# DINOv2.


def _read_weights(path, model):
    """The state dict in a weights file (restricted reader: nothing in the file is run), read before the
    slow model construction so that a truncated or foreign file is refused at once."""
    _check_input_file(path, 'DINOv2 weights file')
    state = load_torch_checkpoint(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f'{os.path.basename(path)} is not a state dict of tensors '
                          f'(expected the released {model}_pretrain.pth)')
    return state


def _load_weights(net, state, name, model):
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f'{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})'
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = ([f'missing {describe_names(missing, 4)}'] if missing else []) + \
                ([f'unexpected {describe_names(unexpected, 4)}'] if unexpected else []) + \
                ([f'wrong shape {describe_names(wrong, 2)}'] if wrong else [])
        raise ExportError(f"the weights in {name} do not fit {model}: {'; '.join(parts)}")
    net.load_state_dict(state)


def _check_repo(repo, model):
    """A local clone must offer the hub entry `model`; checked in the text, before its code is imported."""
    if not os.path.isdir(repo):
        raise ExportError(f'DINOv2 repository not found: {repo}')
    hubconf = os.path.join(repo, 'hubconf.py')
    if not os.path.isfile(hubconf):
        raise ExportError(f'{repo} is not a clone of facebookresearch/dinov2 (it has no hubconf.py)')
    with open(hubconf, 'rb') as f:
        if model.encode() not in f.read():
            raise ExportError(f'{repo} is not a clone of facebookresearch/dinov2 (its hubconf.py has no '
                              f'{model}); pass a clone of https://github.com/facebookresearch/dinov2')


def _hub_load(repo, model, pretrained, progress):
    """torch.hub.load from the clone or from GitHub; any failure is the user's setup, reported in one line."""
    where = repo if repo is not None else DINOV2_HUB_REPO
    # xformers kernels would be traced into the graph and are missing from libtorch; the fallback is plain torch.
    os.environ.setdefault('XFORMERS_DISABLED', '1')
    try:
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
        with warnings.catch_warnings(), quiet:
            warnings.simplefilter('ignore')
            if repo is not None:
                net = torch.hub.load(repo, model, source='local', pretrained=pretrained)
            else:
                net = torch.hub.load(DINOV2_HUB_REPO, model, trust_repo=True, verbose=False, skip_validation=True,
                                     pretrained=pretrained)
    except Exception as e:  # network, import and hub errors alike: the user's setup, not a bug here
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ''
        hint = '' if repo is not None else ('; without internet, pass --dinov2-repo (a clone of '
                                            'facebookresearch/dinov2) and --dinov2-weights')
        raise ExportError(f'cannot load {model} from {where}: {type(e).__name__}: {detail}{hint}') from None
    if not isinstance(net, torch.nn.Module):
        raise ExportError(f'{where} returned a {type(net).__name__} for {model}, not a torch module')
    return net


def load_dinov2(repo=None, weights=None, model=DINOV2_MODEL, progress=False):
    """(DINOv2 backbone in eval mode, source description, SHA-256 of its weights file or None).

    repo: a local clone of facebookresearch/dinov2 (else torch.hub fetches it); weights: a local
    weights file (else the hub entry downloads the released ones). progress=False silences what
    torch.hub and the repository print on stderr (download notices and bars).
    """
    if repo is not None:
        _check_repo(repo, model)
    state = _read_weights(weights, model) if weights is not None else None
    net = _hub_load(repo, model, pretrained=weights is None, progress=progress)
    source = f'{model} from {repo if repo is not None else DINOV2_HUB_REPO}'
    if weights is not None:
        _load_weights(net, state, os.path.basename(weights), model)
        digest = sha256_file(weights)
        source += f' with weights {os.path.basename(weights)}'
    else:
        cached = os.path.join(torch.hub.get_dir(), 'checkpoints', f'{model}_pretrain.pth')
        digest = sha256_file(cached) if os.path.isfile(cached) else None
    return net.eval().requires_grad_(False), source, digest


def trace_backbone(backbone, resolution=DINOV2_RESOLUTION):
    """torch.jit.trace of a float [N,3,R,R] -> [N,D] backbone, checked at another batch size.

    The check runs the model as it is (torch's own attention op where there is one), the trace always
    runs plain attention: on torch >= 2 every export thus compares the two."""
    backbone = backbone.eval()
    gen = torch.Generator().manual_seed(0)
    example = torch.randn([2, 3, resolution, resolution], generator=gen)
    other = torch.randn([3, 3, resolution, resolution], generator=gen)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TracerWarnings about constants that are constant here
        with plain_attention():
            want = backbone(other)
        if not isinstance(want, torch.Tensor) or want.dim() != 2 or want.shape[0] != 3:
            what = tuple(want.shape) if isinstance(want, torch.Tensor) else type(want).__name__
            raise ExportError(f'the DINOv2 model returned {what} for [3,3,{resolution},{resolution}] images, '
                              f'expected features [3,D]')
        with plain_attention(always=True):
            traced = torch.jit.trace(backbone, example, check_trace=False)
        check_no_fused_attention(traced, 'DINOv2')
        got = traced(other)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise RuntimeError('the traced DINOv2 graph does not reproduce the model at another batch size')
    return traced


def build_dinov2_detector(backbone, resolution=DINOV2_RESOLUTION):
    """The scripted DINOv2Detector around a traced copy of `backbone` (any float [N,3,R,R] -> [N,D] module)."""
    return torch.jit.script(DINOv2Detector(trace_backbone(backbone, resolution), resolution).eval())


# ----------------------------------------------------------------------------
# Checking and writing.


def _probe_images():
    gen = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
            for shape in ([2, 3, 40, 48], [1, 1, 32, 32])]


def probe(detector, name):
    """Run the detector on a colour and a grey batch; returns (inputs, outputs, feature dim)."""
    images = _probe_images()
    with torch.no_grad():
        outputs = [detector(x) for x in images]
    dims = set()
    for x, y in zip(images, outputs):
        if y.dim() != 2 or y.shape[0] != x.shape[0] or not y.is_floating_point():
            raise ExportError(f'the {name} detector maps uint8 {list(x.shape)} to {y.dtype} {list(y.shape)}, '
                              f'expected float [{x.shape[0]},D]')
        if not torch.isfinite(y).all():
            raise ExportError(f'the {name} detector returns non-finite features')
        dims.add(y.shape[1])
    if len(dims) != 1:
        raise ExportError(f'the {name} detector returns {sorted(dims)} features for different inputs')
    return images, outputs, dims.pop()


def detector_metadata(name, metric, feature_dim, source, source_sha256):
    return collections.OrderedDict(format_version=FORMAT_VERSION, kind='detector', name=name, metric=metric,
                                   feature_dim=int(feature_dim), source=source, source_sha256=source_sha256,
                                   exporter=EXPORTER)


def save_detector(detector, out_path, meta, probed=None):
    """Write the scripted detector with its metadata, atomically, after checking that the file
    reproduces the in-memory module on the probe images."""
    images, want, _ = probed if probed is not None else probe(detector, meta['name'])

    def check(tmp):
        loaded = torch.jit.load(tmp, map_location='cpu')
        with torch.no_grad():
            for x, w in zip(images, want):
                got = loaded(x)
                if got.shape != w.shape or (got - w).abs().max() > 1e-5 * max(1.0, w.abs().max().item()):
                    raise RuntimeError('verification failed: the written detector differs from the module')

    save_model_file(detector, out_path, {METADATA_FILE: json.dumps(meta, indent=2)}, check=check)
    return meta


def read_detector_metadata(path):
    files = {METADATA_FILE: ''}
    torch.jit.load(path, map_location='cpu', _extra_files=files)
    return json.loads(files[METADATA_FILE])


# ----------------------------------------------------------------------------
# Command line.


def _which(text):
    names = [n.strip() for n in text.split(',') if n.strip()]
    unknown = [n for n in names if n not in OUTPUT_FILES]
    if not names or unknown:
        raise ValueError(text)
    return [n for n in OUTPUT_FILES if n in names]


def main(argv=None):
    parser = CliParser(
        prog='export_detectors.py',
        description="Write EDM2's metric detectors as TorchScript files for autoguide ref/fid: inception.pt "
                    '(FID, Inception-v3) and dinov2.pt (FD_DINOv2, ViT-L/14), each mapping uint8 images [N,C,H,W] '
                    "to features with EDM2's resizing and normalization inside. Needs internet unless the "
                    'inputs are given as local files.')
    parser.add_argument('--out-dir', '--out_dir', dest='out_dir', metavar='DIR', required=True,
                        help='folder for inception.pt / dinov2.pt (created if missing; files replaced atomically)')
    parser.add_argument('--which', metavar='LIST', default='inception,dinov2',
                        help='comma-separated detectors to write: inception, dinov2 (default: both)')
    parser.add_argument('--inception-file', dest='inception_file', metavar='FILE',
                        help="NVIDIA's TorchScript inception-2015-12-05.pt (default: download it)")
    parser.add_argument('--inception-url', dest='inception_url', metavar='URL', default=INCEPTION_URL,
                        help='where to download it from (default: %(default)s)')
    parser.add_argument('--dinov2-repo', dest='dinov2_repo', metavar='DIR',
                        help=f'local clone of facebookresearch/dinov2 (default: torch.hub {DINOV2_HUB_REPO})')
    parser.add_argument('--dinov2-weights', dest='dinov2_weights', metavar='FILE',
                        help=f'local {DINOV2_MODEL}_pretrain.pth (default: the hub entry downloads it)')
    parser.add_argument('-v', '--verbose', action='store_true', help='show progress even when stderr is not a terminal')
    parser.add_argument('-q', '--quiet', action='store_true', help='print nothing on success')
    args = parser.parse_args(argv)
    try:
        which = _which(args.which)
    except ValueError:
        parser.error(f"--which: expected a comma-separated list of {', '.join(OUTPUT_FILES)}, got '{args.which}'")

    show = (args.verbose or sys.stderr.isatty()) and not args.quiet

    def progress(text):
        if show:
            print(f'export: {text}', file=sys.stderr, flush=True)

    def convert():
        out_dir = os.path.abspath(args.out_dir)
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise ExportError(f'--out-dir is not a directory: {out_dir}')
        # Every local input is checked before anything slow happens, and every detector is built
        # and checked before the first file is written.
        if 'inception' in which and args.inception_file is not None:
            _check_input_file(args.inception_file, 'Inception file')
            out = os.path.join(out_dir, OUTPUT_FILES['inception'])
            if os.path.exists(out) and os.path.samefile(out, args.inception_file):
                raise ExportError('--inception-file is the output file; choose another --out-dir')
        if 'dinov2' in which:
            if args.dinov2_weights is not None:
                _check_input_file(args.dinov2_weights, 'DINOv2 weights file')
            if args.dinov2_repo is not None:
                _check_repo(args.dinov2_repo, DINOV2_MODEL)

        ready = []
        if 'inception' in which:
            with tempfile.TemporaryDirectory(prefix='autoguide-inception-') as tmp:
                path = args.inception_file
                if path is None:
                    progress(f'downloading {args.inception_url}')
                    path = download(args.inception_url, tmp, progress=show)
                progress(f'reading {path}')
                inception = load_inception(path)
                source = os.path.basename(path) if args.inception_file is not None else args.inception_url
                digest = sha256_file(path)
            detector = build_inception_detector(inception)
            probed = probe(detector, 'inception-v3')
            ready.append(('inception', detector, probed,
                          detector_metadata('inception-v3', 'fid', probed[2], source, digest)))
        if 'dinov2' in which:
            progress(f'loading {DINOV2_MODEL} from {args.dinov2_repo or DINOV2_HUB_REPO}')
            backbone, source, digest = load_dinov2(args.dinov2_repo, args.dinov2_weights, progress=show)
            progress('tracing the backbone')
            detector = build_dinov2_detector(backbone)
            probed = probe(detector, 'dinov2-vitl14')
            ready.append(('dinov2', detector, probed,
                          detector_metadata('dinov2-vitl14', 'fd_dinov2', probed[2], source, digest)))

        os.makedirs(out_dir, exist_ok=True)
        written = []
        for key, detector, probed, meta in ready:
            out = os.path.join(out_dir, OUTPUT_FILES[key])
            progress(f'writing {out}')
            save_detector(detector, out, meta, probed)
            written.append((out, meta))
        return written

    status, written = run_reporting_errors(convert)
    if status:
        return status
    if not args.quiet:
        for out, meta in written:
            print(f"exported {meta['name']} -> {out}: {format_mib(os.path.getsize(out))}, "
                  f"{meta['feature_dim']} features", file=sys.stderr)
    return 0
