"""The toy denoiser: a magnitude-preserving MLP that models log p(x; sigma), as in the autoguidance paper's
2D example (App. C), packaged in autoguide's model contract.

Why an energy model: the net outputs a scalar per point, an unnormalised log-density, and the score is its
gradient. That keeps the learned score a conservative field, so the densities of two nets (and their ratio,
which is what autoguidance follows) are well-defined and can be drawn.

Preconditioning (the EDM idea in log-density form):
    x* = x / sqrt(sigma_data^2 + sigma^2)                           unit-variance input at every sigma
    log p(x; sigma) = gain * mean(MLP([x*, ln(sigma)/4, 1, c])^2) / sigma - |x*|^2 / 2
With gain = 0 (its initial value) this is N(0, sigma_data^2 + sigma^2), whose denoiser is exactly EDM's
c_skip * x; the MLP only learns the deviation from that Gaussian.

Why the score is differentiated by hand: autoguide's C++ sampler runs nets under c10::InferenceMode, where
autograd is off, so `forward` must not call torch.autograd. `score` therefore back-propagates through the MLP
explicitly (a few matmuls); it is ordinary differentiable torch code, so training still gets parameter
gradients from it. tests/python/test_toy.py checks it against autograd.
"""

import math
from typing import List, Optional

import torch



def normalize_rows(w: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Each row rescaled to unit RMS (EDM2's `normalize` over the fan-in)."""
    norm = torch.linalg.vector_norm(w, dim=1, keepdim=True)
    return w / (eps + norm / math.sqrt(w.shape[1]))


class ToyDenoiser(torch.nn.Module):
    def __init__(self, hidden_dim: int = 64, num_layers: int = 4, label_dim: int = 0, sigma_data: float = 0.5):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.label_dim = label_dim
        self.sigma_data = sigma_data
        in_dim = 2 + 2 + label_dim  # x*, ln(sigma)/4, a constant 1 (acts as a bias), one-hot class
        dims = [in_dim] + [hidden_dim] * (num_layers + 1)
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(o, i)) for i, o in zip(dims[:-1], dims[1:])])
        self.gain = torch.nn.Parameter(torch.zeros([]))

    @torch.no_grad()
    def force_normalize(self):
        """Forced weight normalisation (EDM2): stored weights are kept at unit RMS rows during training, so
        the effective learning rate does not decay as the weights grow."""
        for w in self.weights:
            w.copy_(normalize_rows(w))

    def _effective_weights(self) -> List[torch.Tensor]:
        # Unit-norm rows: a unit-variance input gives unit-variance outputs (magnitude preservation).
        return [normalize_rows(w) / math.sqrt(w.shape[1]) for w in self.weights]

    def _features(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: Optional[torch.Tensor]):
        c_in = torch.rsqrt(sigma * sigma + self.sigma_data ** 2)[:, None]
        xs = x * c_in
        parts = [xs, torch.log(sigma)[:, None] / 4, torch.ones_like(xs[:, :1])]
        if self.label_dim > 0:
            if class_labels is None:
                parts.append(torch.zeros([x.shape[0], self.label_dim], dtype=x.dtype, device=x.device))
            else:
                parts.append(class_labels.to(x.dtype).reshape(x.shape[0], self.label_dim))
        return torch.cat(parts, dim=1), xs, c_in

    def _sigma(self, sigma: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
        return sigma.to(dtype=like.dtype, device=like.device).reshape(-1).expand(n) if sigma.numel() == 1 \
            else sigma.to(dtype=like.dtype, device=like.device).reshape(n)

    def logp_and_score(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: Optional[torch.Tensor] = None):
        """Unnormalised log p(x; sigma) [N] and its gradient [N,2], for points x [N,2]."""
        sigma = self._sigma(sigma, x.shape[0], x)
        h, xs, c_in = self._features(x, sigma, class_labels)
        ws = self._effective_weights()
        pre: List[torch.Tensor] = []
        for i, w in enumerate(ws):
            if i > 0:
                pre.append(h)
                h = torch.nn.functional.silu(h) / 0.596  # E[silu(z)^2]^0.5 for z ~ N(0,1): unit variance in, unit out
            h = h @ w.t()
        scale = self.gain / sigma
        logp = scale * h.square().mean(1) - 0.5 * xs.square().sum(1)
        # Reverse pass: d logp / d h, then back through each linear map and activation.
        g = (2.0 / self.hidden_dim) * scale[:, None] * h
        for i in range(len(ws) - 1, 0, -1):
            g = g @ ws[i]
            u = pre[i - 1]
            s = torch.sigmoid(u)
            g = g * (s * (1 + u * (1 - s))) / 0.596  # silu'(u) = s(u) (1 + u (1 - s(u)))
        g = g @ ws[0]
        score = (g[:, :2] - xs) * c_in
        return logp, score

    def score(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: Optional[torch.Tensor] = None):
        return self.logp_and_score(x, sigma, class_labels)[1]

    @torch.jit.export
    def logp(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: Optional[torch.Tensor] = None):
        """Unnormalised log-density for points [N,2] (for plots of the learned distributions)."""
        return self.logp_and_score(x.to(torch.float32), sigma, class_labels)[0]

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: Optional[torch.Tensor] = None):
        """EDM denoiser D(x; sigma, c) = x + sigma^2 * score for x [N,2,1,1] (autoguide's image layout)."""
        shape = x.shape
        pts = x.to(torch.float32).reshape(shape[0], 2)
        sigma = self._sigma(sigma, shape[0], pts)
        score = self.score(pts, sigma, class_labels)
        return (pts + sigma[:, None].square() * score).reshape(shape)

    @torch.jit.export
    def prepare(self) -> None:
        """Nothing to precompute: the contract requires the method."""
        pass

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
