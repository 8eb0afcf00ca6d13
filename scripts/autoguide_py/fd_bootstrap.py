"""Fréchet distance with a bootstrap confidence interval over the generated samples.

The FD of N samples is itself a random quantity: another N seeds give another value. Resampling the N
feature vectors with replacement B times and taking the FD of each resample shows how far it moves; the
percentile interval of those B values is the interval reported next to each FD. The reference statistics
(60,000 training images) are held fixed: their own sampling error is far smaller.
"""

import numpy as np
import scipy.linalg


def feature_stats(features):
    """Mean and unbiased covariance (divides by N - 1), in float64, as `autoguide ref` writes them."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) (Heusel et al. 2017), with scipy's matrix square root."""
    root, _ = scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * np.real(root)))


def bootstrap_fd(features, ref_mu, ref_sigma, resamples=200, confidence=0.95, seed=0):
    """(fd, low, high): the FD of `features` [N, D] against the reference, and the percentile interval of
    the FDs of `resamples` resamples (with replacement, N each). The interval's ends are FDs of actual
    resamples (inverted-CDF quantiles), not interpolations between them."""
    f = np.asarray(features, dtype=np.float64)
    fd = frechet_distance(*feature_stats(f), ref_mu, ref_sigma)
    rng = np.random.default_rng(seed)
    values = np.array([frechet_distance(*feature_stats(f[rng.integers(0, len(f), len(f))]), ref_mu, ref_sigma)
                       for _ in range(resamples)])
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method='inverted_cdf')
    return fd, float(low), float(high)
