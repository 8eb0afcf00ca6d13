"""Power-function EMA and its post-hoc reconstruction (Karras et al. 2024, "Analyzing and Improving
the Training Dynamics of Diffusion Models", Sec. 3 and App. C).

An average taken at training time t weights the trajectory by the profile p_t(tau) ∝ tau^gamma on
[0, t] (Eq. 4): its length grows with the training and its width relative to t is sigma_rel
(Eq. 5). Training keeps two such averages and saves them as snapshots; any other sigma_rel at any
snapshot time is then a least-squares combination of the stored ones (App. C.3, Eq. 16-19).

Times are counted in training images, as EDM2 counts them.
"""

import copy

import numpy as np
import torch

STD_LIMIT = 12 ** -0.5  # sigma_rel of gamma -> -1, the widest profile that is still normalisable


def std_to_exp(sigma_rel):
    """gamma for a relative std: the largest real root of Eq. 5 rearranged,
    gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + (12 - s^-2) = 0."""
    sigma_rel = float(sigma_rel)
    if not 0 < sigma_rel < STD_LIMIT:
        raise ValueError(f'EMA std must be in (0, {STD_LIMIT:.4f}), got {sigma_rel}')
    t = sigma_rel ** -2
    return float(np.roots([1, 7, 16 - t, 12 - t]).real.max())


def exp_to_std(gamma):
    """Eq. 5: sigma_rel = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3)))."""
    gamma = float(gamma)
    return float(np.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3))))


def profile_dot(t_a, gamma_a, t_b, gamma_b):
    """<p_a, p_b>: the integral over tau of the two normalised profiles' product (App. C.3).

    p(tau) = (gamma + 1) tau^gamma / t^(gamma + 1) on [0, t]; the product integrates to
    (ga+1)(gb+1) / (ga+gb+1) * min(t)^(ga+gb+1) / (t_a^(ga+1) t_b^(gb+1)), written in ratios
    so that large image counts stay in range."""
    t_a, t_b = np.asarray(t_a, np.float64), np.asarray(t_b, np.float64)
    gamma_a, gamma_b = np.asarray(gamma_a, np.float64), np.asarray(gamma_b, np.float64)
    t_ratio = t_a / t_b
    ratio_power = np.where(t_a < t_b, gamma_b, -gamma_a)
    return (gamma_a + 1) * (gamma_b + 1) * t_ratio ** ratio_power / ((gamma_a + gamma_b + 1) * np.maximum(t_a, t_b))


def solve_coefficients(in_t, in_std, out_t, out_std):
    """Weights X[i, j] of stored average i in reconstructed average j (App. C.3, Eq. 19).

    Least squares in the L2 space of profiles: A X = B with A the Gram matrix of the stored
    profiles and B their inner products with the wanted ones; each column then normalised to
    sum to 1, so the result is an average however well the profile is matched."""
    in_t = np.asarray(in_t, np.float64).reshape(-1, 1)
    in_gamma = np.array([std_to_exp(s) for s in np.ravel(in_std)], np.float64).reshape(-1, 1)
    out_t = np.asarray(out_t, np.float64).reshape(1, -1)
    out_gamma = np.array([std_to_exp(s) for s in np.ravel(out_std)], np.float64).reshape(1, -1)
    gram = profile_dot(in_t, in_gamma, in_t.T, in_gamma.T)
    cross = profile_dot(in_t, in_gamma, out_t, out_gamma)
    x = np.linalg.solve(gram, cross)
    return x / x.sum(axis=0, keepdims=True)


def profile(t, sigma_rel, tau):
    """The normalised profile p_t(tau) itself, for plots and checks."""
    gamma = std_to_exp(sigma_rel)
    tau = np.asarray(tau, np.float64)
    return np.where((tau >= 0) & (tau <= t), (gamma + 1) * tau ** gamma / t ** (gamma + 1), 0.0)


class PowerFunctionEMA:
    """Averages of a training network, one per relative std, updated after every step."""

    def __init__(self, net, stds=(0.050, 0.100)):
        self.stds = [float(s) for s in stds]
        self.gammas = [std_to_exp(s) for s in self.stds]
        self.nets = [copy.deepcopy(net).eval().requires_grad_(False) for _ in self.stds]

    @torch.no_grad()
    def update(self, net, nimg, batch_size):
        """After a step that brought the image count to nimg: beta = (1 - batch/nimg)^(gamma+1),
        which makes p_t ∝ tau^gamma exactly at step boundaries (the first update copies)."""
        for gamma, ema in zip(self.gammas, self.nets):
            beta = (1 - batch_size / nimg) ** (gamma + 1)
            for p_ema, p_net in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p_net.detach(), 1 - beta)
            for b_ema, b_net in zip(ema.buffers(), net.buffers()):
                b_ema.copy_(b_net.detach())

    def averages(self):
        """(std, network) pairs."""
        return list(zip(self.stds, self.nets))


def reconstruct(snapshots, out_stds, out_nimg=None, buffers=(), keep_fp32=False):
    """Post-hoc averages from stored ones (App. C.3), summed as EDM2's reconstruct_phema.py sums them.

    snapshots: (nimg, std, state_dict) triples, the state dicts of power-function averages taken at
    nimg training images; out_stds: the relative stds wanted at out_nimg (default: the latest
    snapshot); buffers: state-dict names that are not averaged (EDM2's Fourier buffers) but copied from
    the last snapshot. The snapshots at or before out_nimg are taken in order of (nimg, std); each
    floating tensor is accumulated in float32 as out += theta_i * X[i, j] and finally stored in the
    snapshots' own dtype (fp16 for EDM2's raw snapshots: NVIDIA's output bit for bit), or kept in float32
    with keep_fp32. Returns one state dict per out std."""
    if not snapshots:
        raise ValueError('no snapshots to reconstruct from')
    latest = max(n for n, _, _ in snapshots)
    out_nimg = latest if out_nimg is None else out_nimg
    used = sorted((s for s in snapshots if 0 < s[0] <= out_nimg), key=lambda s: (s[0], s[1]))
    if not used:
        raise ValueError(f'no snapshot at or before {out_nimg} images')
    coefs = solve_coefficients([n for n, _, _ in used], [s for _, s, _ in used],
                               [out_nimg] * len(out_stds), list(out_stds))
    last = used[-1][2]
    averaged = [k for k, v in last.items() if v.is_floating_point() and k not in set(buffers)]
    results = []
    for j in range(len(out_stds)):
        out = {k: v.detach().clone() for k, v in last.items()}
        for k in averaged:
            acc = torch.zeros_like(last[k], dtype=torch.float32)
            for i, (_, _, sd) in enumerate(used):
                acc += sd[k].to(torch.float32) * float(coefs[i, j])
            out[k] = acc if keep_fp32 else acc.to(last[k].dtype)
        results.append(out)
    return results
