"""How close a set of 2D samples is to class A of the ground truth, in three numbers.

- mean log-density: the average of log p_A(x) (sigma = 0, exact). Rewards samples on the data, and
  punishes far outliers heavily (the branches are thin, so log p falls off quadratically and fast).
- outlier share: the fraction of samples with log p_A(x) below the 1st percentile of log p_A over true
  class-A samples (so true samples score 1% by construction).
- coverage: the number of class-A branches (of 127) that own at least one non-outlier sample. A sample
  belongs to the branch of its most responsible mixture component, argmax_k phi_k N(x; mu_k, Sigma_k);
  outliers own nothing, so a cloud between branches cannot count as covering them.
- outer-twig share (a supplement): the fraction of samples owned by the 64 deepest branches, the
  faint outer twigs that a sharpening sampler loses first (true samples: about 6.6%).
- covered_by_depth: coverage split by branch depth 0..6 (of 1, 2, 4, ..., 64 branches).
"""

import numpy as np
import torch

import fractal


class ClassAReference:
    def __init__(self, n_true=16384, seed=0):
        self.gt = fractal.ground_truth('A')
        self.branch = torch.as_tensor(fractal.branch_of_component('A'))
        depth = torch.as_tensor(fractal.components()['depth'][fractal.selection('A')])
        self.branch_depth = torch.zeros(fractal.BRANCHES_PER_CLASS, dtype=torch.long)
        self.branch_depth[self.branch] = depth
        self.outer = self.branch_depth == fractal.DEPTH - 1
        self.true_samples = self.gt.sample(n_true, 0.0, generator=torch.Generator().manual_seed(seed))
        self.threshold = float(torch.quantile(self.gt.logp(self.true_samples), 0.01))

    def evaluate(self, points):
        """points [N,2] (any float dtype) -> dict of the metrics above."""
        x = torch.as_tensor(np.asarray(points)).to(torch.float64).reshape(-1, 2)
        logp = self.gt.logp(x)
        inlier = logp >= self.threshold
        owner = self.branch[self.gt.responsibility_argmax(x)]
        owned = torch.zeros(fractal.BRANCHES_PER_CLASS, dtype=torch.long)
        owned.index_add_(0, owner[inlier], torch.ones(int(inlier.sum()), dtype=torch.long))
        return dict(
            n=len(x),
            mean_logp=float(logp.mean()),
            median_logp=float(logp.median()),
            outlier_share=float((~inlier).double().mean()),
            coverage=int((owned > 0).sum()),
            outer_share=float((self.outer[owner] & inlier).double().mean()),
            covered_by_depth=[int((owned[self.branch_depth == d] > 0).sum()) for d in range(fractal.DEPTH)],
        )
