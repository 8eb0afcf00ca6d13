"""Power-function EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion
Models", Sec. 3.1 and App. C.2).

The average at time t weights the training trajectory by p_t(tau) ∝ tau^gamma on [0, t]: its length grows
with the training, and its width relative to t is sigma_rel. The exponent gamma for a given sigma_rel is
the largest real root of gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + (12 - s^-2) = 0 (inverting
sigma_rel^2 = (gamma+1) / ((gamma+2)^2 (gamma+3))).
"""

import copy

import numpy as np
import torch


def std_to_exp(sigma_rel):
    if not 0 < sigma_rel < 12 ** -0.5:
        raise ValueError(f'sigma_rel must be in (0, {12 ** -0.5:.4f}), got {sigma_rel}')
    t = sigma_rel ** -2
    return float(np.roots([1, 7, 16 - t, 12 - t]).real.max())


def exp_to_std(gamma):
    return float(np.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3))))


class PowerFunctionEMA:
    def __init__(self, net, sigma_rel):
        self.sigma_rel = sigma_rel
        self.gamma = std_to_exp(sigma_rel)
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net, t):
        """After the t-th step (t = 1, 2, ...): beta = (1 - 1/t)^(gamma+1), so the first update copies."""
        beta = (1 - 1 / t) ** (self.gamma + 1)
        for p_ema, p_net in zip(self.net.parameters(), net.parameters()):
            p_ema.lerp_(p_net.detach(), 1 - beta)
