"""The EDM2 denoiser network, for inference, as modules that torch.jit.script accepts.

Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models"
(equation numbers below are that paper's, unless marked EDM for Karras et al. 2022).

The modules mirror NVlabs/edm2 so that its checkpoints load unchanged: parameter and buffer
names, their registration order and the ModuleDict insertion order are the same, and so is
every floating-point operation of the forward pass, so outputs agree bit for bit. (Scripted
modules too, as long as TorchScript's fusers stay off: on CUDA they rewrite pointwise chains
and change the last bits, so run with torch.jit.optimized_execution(False), or in C++
torch::jit::setGraphExecutorOptimize(false).)

One deliberate difference: EDM2 normalises every weight on every call. Here `prepare()`
does it once and keeps the result in `w_eff` (a plain tensor attribute, so it is not part
of the state dict and not saved with the weights). In eval mode forward calls `prepare()` itself
when the weights are not prepared for the input's device (a file fresh from torch.jit.load, a model
just moved); calling it explicitly after loading or moving does the same once, up front. Training (train mode,
autoguide_py.training) calls it before every step, and then the gradient flows through it.
"""

import math
from typing import List, Optional

import numpy as np
import torch
from torch import Tensor

# Model sizes of the EDM2 paper, by base channel count (Table 6).
SIZES = {'xxs': 64, 'xs': 128, 's': 192, 'm': 256, 'l': 320, 'xl': 384, 'xxl': 448}


# ----------------------------------------------------------------------------
# Primitives.


def _check_prepared(w: Tensor, x: Tensor) -> None:
    # TorchScript cannot read module-level strings, hence the literals here.
    if w.numel() == 0:
        raise RuntimeError('EDM2 network weights are not prepared: call prepare() after loading '
                           'the model and after moving it to its device')
    if not (w.device == x.device):
        raise RuntimeError('EDM2 network weights were prepared on another device than the input: '
                           'call prepare() again after moving the model')


def normalize(x: Tensor, dim: List[int], eps: float = 1e-4) -> Tensor:
    """Scale to unit RMS over `dim` (pixel norm; with dim = all but 0, forced WN, Eq. 66)."""
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    # eps + norm * sqrt(1/n) must round as torch.add(eps, norm, alpha=...) does in EDM2 (one
    # fused kernel); TorchScript has no add(float, Tensor, alpha), so eps becomes a 0-dim tensor.
    alpha = math.sqrt(norm.numel() / x.numel())
    norm = torch.add(torch.tensor(eps, dtype=torch.float64), norm, alpha=alpha)
    return x / norm.to(x.dtype)


def resample(x: Tensor, f: Tensor, mode: str) -> Tensor:
    """2x down- or upsampling with the depthwise filter `f` ([C, 1, k, k], x's dtype).

    A convolution rather than avg_pool/interpolate: those round differently from EDM2.
    """
    if mode == 'keep':
        return x
    pad = (f.shape[-1] - 1) // 2
    if mode == 'down':
        return torch.nn.functional.conv2d(x, f, groups=x.shape[1], stride=2, padding=pad)
    if x.dtype == torch.bfloat16 and not x.is_cuda:
        # PyTorch 1.13's CPU bf16 grouped transposed convolution returns the wrong shape. With EDM2's filters
        # every output is one input times an exactly representable tap, so fp32 gives the same bf16 values.
        return torch.nn.functional.conv_transpose2d(x.float(), f.float(), groups=x.shape[1], stride=2,
                                                    padding=pad).to(x.dtype)
    return torch.nn.functional.conv_transpose2d(x, f, groups=x.shape[1], stride=2, padding=pad)


def mp_silu(x: Tensor) -> Tensor:
    """Magnitude-preserving SiLU (Eq. 81)."""
    return torch.nn.functional.silu(x) / 0.596


def mp_sum(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Magnitude-preserving sum (Eq. 88): lerp(a, b, t) / sqrt((1-t)^2 + t^2), divisor in float64."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


def mp_cat(a: Tensor, b: Tensor, dim: int = 1, t: float = 0.5) -> Tensor:
    """Magnitude-preserving concatenation (Eq. 103); weights in float64."""
    na = a.shape[dim]
    nb = b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t ** 2))
    wa = c / math.sqrt(na) * (1 - t)
    wb = c / math.sqrt(nb) * t
    return torch.cat([wa * a, wb * b], dim=dim)


# ----------------------------------------------------------------------------
# Layers.


class MPFourier(torch.nn.Module):
    """Magnitude-preserving Fourier features of the noise level (Eq. 75)."""

    def __init__(self, num_channels: int, bandwidth: float = 1, device: Optional[torch.device] = None):
        super().__init__()
        # Random at construction, so a checkpoint must supply them.
        self.register_buffer('freqs', 2 * np.pi * torch.randn(num_channels, device=device) * bandwidth)
        self.register_buffer('phases', 2 * np.pi * torch.rand(num_channels, device=device))

    def forward(self, x: Tensor) -> Tensor:
        y = x.to(torch.float32)
        y = torch.outer(y, self.freqs.to(torch.float32))
        y = y + self.phases.to(torch.float32)
        y = y.cos() * math.sqrt(2)
        return y.to(x.dtype)


class MPConv(torch.nn.Module):
    """Magnitude-preserving convolution or linear layer (Eq. 47), no bias.

    `weight` is [out, in, *kernel] (kernel [] = linear). The effective weight is the
    normalised weight (Eq. 66) times gain / sqrt(fan_in), computed once by prepare().
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: List[int],
                 device: Optional[torch.device] = None):
        super().__init__()
        self.out_channels = out_channels
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, *kernel, device=device))
        self.padding = kernel[-1] // 2 if len(kernel) > 0 else 0
        self.w_eff = torch.empty(0)

    def prepare(self, gain: Optional[Tensor], dtype: torch.dtype) -> None:
        # In training mode the effective weight stays differentiable, so training calls
        # prepare() before every forward pass, as EDM2 normalises on every call.
        w = self.weight.to(torch.float32)
        if not self.training:
            w = w.detach()
            if gain is not None:
                gain = gain.detach()
        w = normalize(w, [d for d in range(1, w.dim())])
        fan_in = w[0].numel()
        # EDM2's default gain is the Python number 1, so 1/sqrt(n) is a float64 scalar; the
        # learned gains are 0-dim tensors (fp16 in released pickles) and the division happens
        # in their dtype before the product is promoted to float32.
        if gain is None:
            w = w * (1 / math.sqrt(fan_in))
        else:
            w = w * (gain / math.sqrt(fan_in))
        self.w_eff = w.to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        _check_prepared(self.w_eff, x)
        w = self.w_eff.to(x.dtype)
        if w.dim() == 2:
            return x @ w.t()
        return torch.nn.functional.conv2d(x, w, padding=self.padding)


class Block(torch.nn.Module):
    """U-Net encoder or decoder block with optional self-attention (Figure 21)."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 emb_channels: int,
                 flavor: str = 'enc',                # 'enc' or 'dec'
                 resample_mode: str = 'keep',        # 'keep', 'up' or 'down'
                 resample_filter: List[float] = [1, 1],
                 attention: bool = False,
                 channels_per_head: int = 64,
                 dropout: float = 0,                 # training only
                 res_balance: float = 0.3,           # share of the residual branch
                 attn_balance: float = 0.3,          # share of the attention branch
                 clip_act: Optional[float] = 256,    # None = no clipping
                 device: Optional[torch.device] = None):
        super().__init__()
        if flavor not in ('enc', 'dec'):
            raise ValueError(f'unknown block flavor {flavor!r}')
        if resample_mode not in ('keep', 'up', 'down'):
            raise ValueError(f'unknown resample mode {resample_mode!r}')
        self.out_channels = out_channels
        self.flavor = flavor
        self.resample_filter = [float(v) for v in resample_filter]
        self.resample_mode = resample_mode
        self.num_heads = out_channels // channels_per_head if attention else 0
        self.dropout = float(dropout)
        self.res_balance = float(res_balance)
        self.attn_balance = float(attn_balance)
        self.clip_act: Optional[float] = None if clip_act is None else float(clip_act)

        # Registration order fixes the state-dict order; keep it as in EDM2.
        self.emb_gain = torch.nn.Parameter(torch.zeros([], device=device))
        self.conv_res0 = MPConv(out_channels if flavor == 'enc' else in_channels, out_channels, [3, 3], device)
        self.emb_linear = MPConv(emb_channels, out_channels, [], device)
        self.conv_res1 = MPConv(out_channels, out_channels, [3, 3], device)
        self.conv_skip = MPConv(in_channels, out_channels, [1, 1], device) if in_channels != out_channels else None
        self.attn_qkv = MPConv(out_channels, out_channels * 3, [1, 1], device) if self.num_heads != 0 else None
        self.attn_proj = MPConv(out_channels, out_channels, [1, 1], device) if self.num_heads != 0 else None

        # The 2-D filter is the outer product of the normalised 1-D taps, in float32 like EDM2.
        taps = np.float32(resample_filter)
        if taps.ndim != 1 or len(taps) % 2 != 0:
            raise ValueError('resample_filter must be a 1-D list of even length')
        taps = taps / taps.sum()
        self.resample_taps: List[List[float]] = np.outer(taps, taps).tolist()
        self.resample_channels = in_channels
        self.resample_f = torch.empty(0)

    def prepare(self, dtype: torch.dtype) -> None:
        self.conv_res0.prepare(None, dtype)
        # The embedding path runs in float32 whatever the activation dtype.
        self.emb_linear.prepare(self.emb_gain, torch.float32)
        self.conv_res1.prepare(None, dtype)
        if self.conv_skip is not None:
            self.conv_skip.prepare(None, dtype)
        if self.attn_qkv is not None:
            self.attn_qkv.prepare(None, dtype)
        if self.attn_proj is not None:
            self.attn_proj.prepare(None, dtype)
        if self.resample_mode != 'keep':
            f = torch.tensor(self.resample_taps, dtype=torch.float32, device=self.emb_gain.device)
            f = f.to(dtype).unsqueeze(0).unsqueeze(0)
            if self.resample_mode == 'up':
                f = f * 4  # in the activation dtype, as EDM2 scales its constant filter
            self.resample_f = f.tile([self.resample_channels, 1, 1, 1])

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        # Main branch.
        if self.resample_mode != 'keep':
            _check_prepared(self.resample_f, x)
            x = resample(x, self.resample_f.to(x.dtype), self.resample_mode)
        if self.flavor == 'enc':
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, [1])  # pixel norm

        # Residual branch, modulated by the embedding.
        y = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb) + 1
        y = mp_silu(y * c.unsqueeze(2).unsqueeze(3).to(y.dtype))
        if self.training and self.dropout != 0:
            y = torch.nn.functional.dropout(y, p=self.dropout)
        y = self.conv_res1(y)

        # Connect the branches.
        if self.flavor == 'dec':
            if self.conv_skip is not None:
                x = self.conv_skip(x)
        x = mp_sum(x, y, self.res_balance)

        # Self-attention; q, k, v interleaved per head as [head][channel][q|k|v].
        if self.attn_qkv is not None:
            if self.attn_proj is not None:
                y = self.attn_qkv(x)
                y = y.reshape([y.shape[0], self.num_heads, -1, 3, y.shape[2] * y.shape[3]])
                qkv = normalize(y, [2]).unbind(3)
                q, k, v = qkv[0], qkv[1], qkv[2]
                w = torch.einsum('nhcq,nhck->nhqk', [q, k / math.sqrt(q.shape[2])]).softmax(dim=3)
                y = torch.einsum('nhqk,nhck->nhcq', [w, v])
                y = self.attn_proj(y.reshape(x.shape))
                x = mp_sum(x, y, self.attn_balance)

        clip_act = self.clip_act
        if clip_act is not None:
            x = x.clip(-clip_act, clip_act)
        return x


# ----------------------------------------------------------------------------
# Networks.


class UNet(torch.nn.Module):
    """EDM2 U-Net (Figure 21)."""

    def __init__(self,
                 img_resolution: int,
                 img_channels: int,
                 label_dim: int,                        # 0 = unconditional
                 model_channels: int = 192,
                 channel_mult: List[int] = [1, 2, 3, 4],
                 channel_mult_noise: Optional[int] = None,   # None = channel_mult[0]
                 channel_mult_emb: Optional[int] = None,     # None = max(channel_mult)
                 num_blocks: int = 3,
                 attn_resolutions: List[int] = [16, 8],
                 label_balance: float = 0.5,            # share of the class embedding
                 concat_balance: float = 0.5,           # share of the skip connection
                 device: Optional[torch.device] = None,
                 **block_kwargs):
        super().__init__()
        cblock = [model_channels * m for m in channel_mult]
        cnoise = model_channels * channel_mult_noise if channel_mult_noise is not None else cblock[0]
        cemb = model_channels * channel_mult_emb if channel_mult_emb is not None else max(cblock)
        self.label_balance = float(label_balance)
        self.concat_balance = float(concat_balance)
        self.out_gain = torch.nn.Parameter(torch.zeros([], device=device))

        # Embedding.
        self.emb_fourier = MPFourier(cnoise, device=device)
        self.emb_noise = MPConv(cnoise, cemb, [], device)
        self.emb_label = MPConv(label_dim, cemb, [], device) if label_dim != 0 else None

        # Encoder: '{R}x{R}_conv' | '_down', then '_block{i}', R the output resolution.
        self.enc = torch.nn.ModuleDict()
        cout = img_channels + 1
        skips = []
        for level, channels in enumerate(cblock):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, channels
                self.enc[f'{res}x{res}_conv'] = MPConv(cin, cout, [3, 3], device)
            else:
                self.enc[f'{res}x{res}_down'] = Block(cout, cout, cemb, flavor='enc', resample_mode='down',
                                                      device=device, **block_kwargs)
            skips.append(cout)
            for idx in range(num_blocks):
                cin, cout = cout, channels
                self.enc[f'{res}x{res}_block{idx}'] = Block(cin, cout, cemb, flavor='enc',
                                                            attention=(res in attn_resolutions),
                                                            device=device, **block_kwargs)
                skips.append(cout)

        # Decoder: mirrors the encoder; every '_block' consumes one skip, deepest first.
        self.dec = torch.nn.ModuleDict()
        for level, channels in reversed(list(enumerate(cblock))):
            res = img_resolution >> level
            if level == len(cblock) - 1:
                self.dec[f'{res}x{res}_in0'] = Block(cout, cout, cemb, flavor='dec', attention=True,
                                                     device=device, **block_kwargs)
                self.dec[f'{res}x{res}_in1'] = Block(cout, cout, cemb, flavor='dec',
                                                     device=device, **block_kwargs)
            else:
                self.dec[f'{res}x{res}_up'] = Block(cout, cout, cemb, flavor='dec', resample_mode='up',
                                                    device=device, **block_kwargs)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), channels
                self.dec[f'{res}x{res}_block{idx}'] = Block(cin, cout, cemb, flavor='dec',
                                                            attention=(res in attn_resolutions),
                                                            device=device, **block_kwargs)
        self.out_conv = MPConv(cout, img_channels, [3, 3], device)

    def prepare(self, dtype: torch.dtype) -> None:
        self.emb_noise.prepare(None, torch.float32)
        if self.emb_label is not None:
            self.emb_label.prepare(None, torch.float32)
        for name, block in self.enc.items():
            if isinstance(block, MPConv):
                block.prepare(None, dtype)
            else:
                block.prepare(dtype)
        for name, block in self.dec.items():
            block.prepare(dtype)
        self.out_conv.prepare(self.out_gain, dtype)

    def forward(self, x: Tensor, noise_labels: Tensor, class_labels: Optional[Tensor]) -> Tensor:
        # Embedding (float32 throughout).
        emb = self.emb_noise(self.emb_fourier(noise_labels))
        if self.emb_label is not None:
            if class_labels is None:
                raise RuntimeError('this network is class-conditional: class_labels are required')
            emb = mp_sum(emb, self.emb_label(class_labels * math.sqrt(class_labels.shape[1])),
                         self.label_balance)
        emb = mp_silu(emb)

        # Encoder; a constant channel of ones lets the first conv see the image border.
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        skips: List[Tensor] = []
        for name, block in self.enc.items():
            if isinstance(block, MPConv):
                x = block(x)
            else:
                x = block(x, emb)
            skips.append(x)

        # Decoder.
        for name, block in self.dec.items():
            if 'block' in name:
                x = mp_cat(x, skips.pop(), t=self.concat_balance)
            x = block(x, emb)
        return self.out_conv(x)


def example_inputs(batch: int, img_channels: int, img_resolution: int, label_dim: int, sigma: float = 2.0,
                   seed: int = 0):
    """(x, sigma, class_labels) for timing or counting one call: Gaussian x, one noise level, classes cycled."""
    x = torch.randn(batch, img_channels, img_resolution, img_resolution,
                    generator=torch.Generator().manual_seed(seed)) * sigma
    labels = None
    if label_dim:
        labels = torch.nn.functional.one_hot(torch.arange(batch) % label_dim, label_dim).float()
    return x, torch.full([batch], float(sigma)), labels


class Precond(torch.nn.Module):
    """EDM preconditioning around the U-Net: D(x; sigma, c) (EDM Eq. 7 and Table 1).

    The logvar_* modules estimate the loss uncertainty during training (EDM2 Eq. 21); they
    are kept so checkpoints load and round-trip, and are not used by forward.
    """

    def __init__(self,
                 img_resolution: int,
                 img_channels: int,
                 label_dim: int,                 # 0 = unconditional
                 use_fp16: bool = True,          # fp16 activations when running on CUDA
                 sigma_data: float = 0.5,
                 logvar_channels: int = 128,
                 device: Optional[torch.device] = None,
                 **unet_kwargs):
        super().__init__()
        self.img_resolution = int(img_resolution)
        self.img_channels = int(img_channels)
        self.label_dim = int(label_dim)
        self.use_fp16 = bool(use_fp16)
        # A torch ScalarType code that overrides the compute dtype (the CLI's --dtype); -1 keeps EDM2's choice.
        self.force_dtype = -1
        self.sigma_data = float(sigma_data)
        self.unet = UNet(img_resolution=img_resolution, img_channels=img_channels, label_dim=label_dim,
                         device=device, **unet_kwargs)
        self.logvar_fourier = MPFourier(logvar_channels, device=device)
        self.logvar_linear = MPConv(logvar_channels, 1, [], device)
        # What rebuilds this architecture (device aside); read by the exporter, not by TorchScript.
        self.config = dict(img_resolution=self.img_resolution, img_channels=self.img_channels,
                           label_dim=self.label_dim, use_fp16=self.use_fp16, sigma_data=self.sigma_data,
                           logvar_channels=int(logvar_channels), **unet_kwargs)

    __jit_ignored_attributes__ = ['config']

    def _compute_dtype(self, on_cuda: bool) -> torch.dtype:
        # EDM2 runs the U-Net in fp16 on CUDA and in fp32 elsewhere; the embedding path stays fp32 regardless.
        dtype = torch.float16 if (self.use_fp16 and on_cuda) else torch.float32
        if self.force_dtype >= 0:
            dtype = self.force_dtype
        return dtype

    @torch.jit.export
    def prepare(self) -> None:
        """Compute the effective weights for the device the parameters are on."""
        on_cuda = self.unet.out_gain.is_cuda
        dtype = self._compute_dtype(on_cuda)
        self.unet.prepare(dtype)
        self.logvar_linear.prepare(None, torch.float32)

    def forward(self, x: Tensor, sigma: Tensor, class_labels: Optional[Tensor] = None) -> Tensor:
        # An exported file holds raw weights only (docs/model_format.md): in eval mode a net fresh from
        # torch.jit.load, or moved to another device, prepares itself on first use. Training prepares
        # explicitly before every step, so that the gradient flows through the normalisation.
        w = self.logvar_linear.w_eff
        if not self.training and (w.numel() == 0 or not (w.device == x.device)):
            self.prepare()
        x = x.to(torch.float32)
        sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
        labels: Optional[Tensor] = None
        if self.label_dim != 0:
            if class_labels is None or class_labels.numel() == 0:
                labels = torch.zeros([1, self.label_dim], dtype=torch.float32, device=x.device)
            else:
                labels = class_labels.to(torch.float32).reshape(-1, self.label_dim)
        dtype = self._compute_dtype(x.is_cuda)

        # EDM Table 1. EDM2 writes `number / tensor`, which Python evaluates as
        # tensor.reciprocal() * number; spelled out so the rounding is the same.
        sd = self.sigma_data
        c_skip = (sigma ** 2 + sd ** 2).reciprocal() * sd ** 2
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = (sd ** 2 + sigma ** 2).sqrt().reciprocal()
        c_noise = sigma.flatten().log() / 4

        F_x = self.unet((c_in * x).to(dtype), c_noise, labels)
        return c_skip * x + c_out * F_x.to(torch.float32)
