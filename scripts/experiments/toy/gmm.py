"""A 2D Gaussian mixture whose heat-diffused versions p(x; sigma) = p * N(0, sigma^2 I) are known exactly.

Convolving a Gaussian component with N(0, sigma^2 I) only adds sigma^2 to its covariance, so the
smoothed mixture stays a mixture of Gaussians with the same weights and means. Each covariance is
kept as an eigendecomposition Sigma_k = Q_k diag(L_k) Q_k^T; the smoothed one is Q_k diag(L_k + sigma^2) Q_k^T,
which makes inverses and determinants per (point, component, sigma) cheap.

Densities are combined in the log domain (log-sum-exp) so that points far from the data get a finite
log-density instead of log(0), and the score is a responsibility-weighted average, which is exact for
any distance.
"""

import math

import torch

_CHUNK = 128  # points per block: keeps the [points, components*2] temporaries in cache (3x faster than big blocks)


class GaussianMixture:
    def __init__(self, phi, mu, Sigma, dtype=torch.float64, device='cpu'):
        """phi [K] (any positive scale; renormalised), mu [K,2], Sigma [K,2,2] symmetric positive definite."""
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)
        phi, mu, Sigma = as_t(phi), as_t(mu), as_t(Sigma)
        if phi.ndim != 1 or mu.shape != (len(phi), 2) or Sigma.shape != (len(phi), 2, 2):
            raise ValueError('expected phi [K], mu [K,2], Sigma [K,2,2]')
        L, Q = torch.linalg.eigh(Sigma)  # in float64 whatever the working dtype: the thin components are ill-conditioned
        self.dtype, self.device = dtype, torch.device(device)
        put = lambda t: t.to(dtype=dtype, device=self.device)
        self.phi = put(phi / phi.sum())
        self.mu, self.Sigma, self.L, self.Q = put(mu), put(Sigma), put(L), put(Q)
        self.log_phi = torch.log(self.phi)
        self._Q_flat = self.Q.permute(1, 0, 2).reshape(2, -1)         # x @ this = every Q_k^T x: [N, K*2]
        self._Q_back = self.Q.permute(0, 2, 1).reshape(-1, 2)         # [N, K*2] @ this = sum_k Q_k v_k: [N, 2]
        self._mu_eig_flat = torch.einsum('kd,kdj->kj', self.mu, self.Q).reshape(-1)
        self._L_flat = self.L.reshape(-1)
        self._log_norm = self.log_phi - math.log(2 * math.pi)
        self._cdf = torch.cumsum(self.phi.to(torch.float64), 0).cpu()

    @property
    def num_components(self):
        return self.phi.shape[0]

    # ------------------------------------------------------------------------------------------
    # Per (point, component) terms.

    def _prepare(self, x, sigma):
        x = torch.as_tensor(x).to(dtype=self.dtype, device=self.device)
        if x.shape[-1] != 2:
            raise ValueError(f'points must have a last dimension of 2, got {tuple(x.shape)}')
        flat = x.reshape(-1, 2)
        s = torch.as_tensor(sigma, dtype=self.dtype, device=self.device)
        s = s.broadcast_to(x.shape[:-1]).reshape(-1)
        return flat, s, x.shape[:-1]

    def _terms(self, x, sigma):
        """log(phi_k N(x; mu_k, Sigma_k + sigma^2 I)) [N,K] and inv(Sigma_k') (mu_k - x) in each eigenbasis [N,K*2].

        Laid out flat (column 2k+j = component k, eigenvector j) so that every step is one pass over a
        contiguous block or one matmul; this runs a few times faster on CPU than per-component einsums."""
        y = self._mu_eig_flat - x @ self._Q_flat             # Q_k^T (mu_k - x)
        Ls = self._L_flat + sigma.square()[:, None]          # eigenvalues of Sigma_k + sigma^2 I
        z = y / Ls
        n = x.shape[0]
        quad = (y * z).view(n, -1, 2).sum(-1)
        log_det = torch.log(Ls.view(n, -1, 2).prod(-1))
        log_w = self._log_norm - 0.5 * (log_det + quad)
        return log_w, z

    def _blocks(self, x, sigma, fn):
        flat, s, shape = self._prepare(x, sigma)
        out = [fn(*self._terms(xb, sb)) for xb, sb in zip(flat.split(_CHUNK), s.split(_CHUNK))]
        out = torch.cat(out) if out else torch.zeros([0], dtype=self.dtype, device=self.device)
        return out, shape

    # ------------------------------------------------------------------------------------------
    # Density, log-density, score, responsibilities.

    def logp(self, x, sigma=0.0):
        """log p(x; sigma) for points x [...,2]; sigma a scalar or broadcastable to x[...,0]."""
        out, shape = self._blocks(x, sigma, lambda lw, z: torch.logsumexp(lw, -1))
        return out.reshape(shape)

    def pdf(self, x, sigma=0.0):
        return self.logp(x, sigma).exp()

    def score(self, x, sigma=0.0):
        """grad_x log p(x; sigma): the responsibility-weighted mean of inv(Sigma_k') (mu_k - x)."""
        return self.logp_and_score(x, sigma)[1]

    def logp_and_score(self, x, sigma=0.0):
        """Both from one pass over the components."""
        def fn(log_w, z):
            logp = torch.logsumexp(log_w, -1, keepdim=True)
            r = torch.exp(log_w - logp)
            score = (z.view(*r.shape, 2) * r[..., None]).view(r.shape[0], -1) @ self._Q_back
            return torch.cat([logp, score], -1)
        out, shape = self._blocks(x, sigma, fn)
        out = out.reshape(*shape, 3)
        return out[..., 0], out[..., 1:]

    def denoise(self, x, sigma):
        """The ideal denoiser E[x0 | x] = x + sigma^2 score (Tweedie)."""
        x = torch.as_tensor(x).to(dtype=self.dtype, device=self.device)
        s = torch.as_tensor(sigma, dtype=self.dtype, device=self.device).broadcast_to(x.shape[:-1])
        return x + s[..., None].square() * self.score(x, s)

    def responsibility_argmax(self, x, sigma=0.0):
        """Index of the component that most probably produced each point."""
        out, shape = self._blocks(x, sigma, lambda lw, z: lw.argmax(-1))
        return out.reshape(shape)

    # ------------------------------------------------------------------------------------------
    # Sampling and moments.

    def sample(self, n, sigma=0.0, generator=None, return_components=False):
        """n points of p(x; sigma): a component by its weight, then a Gaussian draw from it."""
        u = torch.rand(n, dtype=torch.float64, generator=generator)
        k = torch.searchsorted(self._cdf, u * self._cdf[-1], right=True).clamp_(max=self.num_components - 1)
        eps = torch.randn(n, 2, dtype=torch.float64, generator=generator).to(dtype=self.dtype, device=self.device)
        k = k.to(self.device)
        s = torch.as_tensor(sigma, dtype=self.dtype, device=self.device).broadcast_to([n])
        scale = (self.L[k] + s.square()[:, None]).sqrt()
        x = self.mu[k] + torch.einsum('ndj,nj->nd', self.Q[k], scale * eps)
        return (x, k) if return_components else x

    def mean(self):
        return self.phi @ self.mu

    def cov(self, sigma=0.0):
        """Law of total covariance: E[Sigma_k'] + Cov[mu_k]."""
        m = self.mean()
        second = torch.einsum('k,kd,ke->de', self.phi, self.mu, self.mu)
        within = torch.einsum('k,kde->de', self.phi, self.Sigma)
        eye = torch.eye(2, dtype=self.dtype, device=self.device)
        return within + float(sigma) ** 2 * eye + second - torch.outer(m, m)
