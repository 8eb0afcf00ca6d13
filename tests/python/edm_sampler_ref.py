"""An independent Python implementation of the EDM sampler, written from the equations, to check the C++ one.

Karras et al. 2022 (EDM), Eq. 5 (time steps) and Algorithm 2 (Heun with churn); guidance as in the autoguidance
paper, Eq. 2: D_w = D_guide + w (D_main - D_guide). Per-seed torch.Generator streams in EDM2's order: noise,
class, churn noise.
"""
import math

import torch


def sigma_steps(num_steps, sigma_min, sigma_max, rho):
    i = torch.arange(num_steps, dtype=torch.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    t = (a + i / (num_steps - 1) * (b - a)) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)]).to(torch.float32)


def draw(seeds, channels, resolution, label_dim, class_idx=None):
    gens = [torch.Generator().manual_seed(s % (1 << 32)) for s in seeds]
    noise = torch.stack([torch.randn([channels, resolution, resolution], generator=g) for g in gens])
    labels = classes = None
    if label_dim > 0:
        classes = torch.stack([torch.randint(label_dim, size=[], generator=g) for g in gens])
        if class_idx is not None:
            classes = torch.full_like(classes, class_idx)
        labels = torch.nn.functional.one_hot(classes, label_dim).to(torch.float32)
    return gens, noise, labels, classes


def guided(net, labels, gnet=None, w=1.0, uncond=None, alpha=None, interval=None):
    """D(x, sigma, i): Eq. 2 with one guide; with `uncond` and `alpha` the App. B.2 mix
    D_m + (w_u - 1)(D_m - D_u) + (w_c - 1)(D_m - D_c). `interval(i)` says whether step i is guided."""
    def D(x, sigma, i):
        s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        d = net(x, s, labels)
        if w == 1 or (interval is not None and not interval(i)):
            return d
        if alpha is None:
            g = gnet(x, s, labels)
            return g + w * (d - g)
        w_u, w_c = (1 - alpha) * (w - 1) + 1, alpha * (w - 1) + 1
        return d + (w_u - 1) * (d - uncond(x, s, labels)) + (w_c - 1) * (d - gnet(x, s, labels))
    return D


def sample(net, noise, labels, gens, gnet=None, w=1.0, num_steps=32, sigma_min=0.002, sigma_max=80.0, rho=7.0,
           S_churn=0.0, S_min=0.0, S_max=math.inf, S_noise=1.0, D=None, sampler='heun'):
    D = D or guided(net, labels, gnet, w)
    t = sigma_steps(num_steps, sigma_min, sigma_max, rho).to(noise.device)
    if sampler == 'dpmpp2m':
        return dpmpp2m(D, noise, t)
    x = noise * t[0]
    for i in range(num_steps):
        t_cur, t_next = t[i], t[i + 1]
        t_hat, x_hat = t_cur, x
        if S_churn > 0 and S_min <= float(t_cur) <= S_max:  # float(): one host sync per step is fine here
            gamma = min(S_churn / num_steps, math.sqrt(2) - 1)
            t_hat = t_cur * (1 + gamma)
            eps = torch.stack([torch.randn(x.shape[1:], generator=g, device=x.device) for g in gens])
            x_hat = x + torch.sqrt(t_hat ** 2 - t_cur ** 2) * S_noise * eps
        d_cur = (x_hat - D(x_hat, t_hat, i)) / t_hat
        x = x_hat + (t_next - t_hat) * d_cur
        if sampler == 'heun' and i < num_steps - 1:
            d_next = (x - D(x, t_next, i)) / t_next
            x = x_hat + (t_next - t_hat) * (d_cur + d_next) / 2
    return x


def dpmpp2m(D, noise, t):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in lambda = -log(sigma), data prediction, float64 steps."""
    x = noise * t[0]
    lam = [-math.log(float(s)) if float(s) > 0 else math.inf for s in t]
    prev = None
    for i in range(len(t) - 1):
        d = D(x, t[i], i)
        if float(t[i + 1]) == 0:
            x = d
            break
        h = lam[i + 1] - lam[i]
        if prev is None:
            x = float(t[i + 1] / t[i]) * x - math.expm1(-h) * d
        else:
            r = (lam[i] - lam[i - 1]) / h
            x = float(t[i + 1] / t[i]) * x - math.expm1(-h) * ((1 + 1 / (2 * r)) * d - 1 / (2 * r) * prev)
        prev = d
    return x
