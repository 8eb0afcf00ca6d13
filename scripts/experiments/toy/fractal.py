"""The ground truth of the autoguidance paper's 2D example (Karras et al. 2024, Fig. 1 and App. C).

Each class is a binary tree of straight branches, 7 levels deep (2^7 - 1 = 127 branches); each branch
is 8 elongated Gaussians along its length. Deeper branches are shorter, thinner and carry less weight,
so a sampler that sharpens the distribution loses the faint outer twigs first. Class A grows from the
origin towards the upper right, class B towards the lower left.

All randomness comes from one numpy RandomState(2), consumed in a fixed order (class A's whole tree,
then class B's): the branch length is drawn on entering a branch, and each child's angle is drawn
just before descending into it -- including the children of the deepest level, which produce no
components but still advance the stream.
"""

import functools

import numpy as np

from gmm import GaussianMixture

CLASSES = ('A', 'B')
DEPTH = 7
COMPONENTS_PER_BRANCH = 8
BRANCHES_PER_CLASS = 2 ** DEPTH - 1
SEED = 2
ORIGIN = np.array([0.0030, 0.0325])
SCALE = np.array([1.3136, 1.3844])
START_ANGLE = {'A': np.pi * 0.25, 'B': np.pi * 1.25}


@functools.lru_cache(None)
def components(seed=SEED):
    """Every component of both classes: dict of arrays cls [2032] ('A'/'B'), branch [2032] (0..126 within
    its class, in creation order), depth, phi (unnormalised), mu [.,2], Sigma [.,2,2]."""
    rnd = np.random.RandomState(seed)
    out = {key: [] for key in ('cls', 'branch', 'depth', 'phi', 'mu', 'Sigma')}
    counter = {}

    def grow(cls, depth, pos, angle):
        if depth >= DEPTH:
            return
        branch = counter[cls]
        counter[cls] += 1
        direction = np.array([np.cos(angle), np.sin(angle)])
        length = 0.292 * 0.8 ** depth * (1 + 0.2 * rnd.randn())
        thickness = 0.2 * 0.8 ** depth / length      # across/along aspect ratio
        size = SCALE * length * 0.06                  # per-axis std along the branch
        along = np.outer(direction, direction)
        Sigma = (along + (np.eye(2) - along) * thickness ** 2) * np.outer(size, size)
        for t in np.linspace(0.07, 0.93, COMPONENTS_PER_BRANCH):
            out['cls'].append(cls)
            out['branch'].append(branch)
            out['depth'].append(depth)
            out['phi'].append(length * 0.5 ** depth)
            out['mu'].append((pos + direction * length * t) * SCALE)
            out['Sigma'].append(Sigma)
        for sign in (1, -1):
            turn = sign * 0.7 ** depth * (1 + 0.2 * rnd.randn())
            grow(cls, depth + 1, pos + direction * length, angle + turn)

    for cls in CLASSES:
        counter[cls] = 0
        grow(cls, 0, ORIGIN, START_ANGLE[cls])
    return {k: np.asarray(v) for k, v in out.items()}


def selection(classes):
    if not classes or any(c not in CLASSES for c in classes):
        raise ValueError(f"classes must be a combination of {CLASSES}, got {classes!r}")
    return np.isin(components()['cls'], list(classes))


@functools.lru_cache(None)
def ground_truth(classes='A', dtype_name='float64'):
    """The mixture of the given classes ('A', 'B' or 'AB'), weights renormalised over the selection."""
    import torch
    c, sel = components(), selection(classes)
    return GaussianMixture(c['phi'][sel], c['mu'][sel], c['Sigma'][sel], dtype=getattr(torch, dtype_name))


def branch_of_component(classes='A'):
    """Branch index (0..126) of each component of ground_truth(classes); only meaningful for one class."""
    return components()['branch'][selection(classes)]
