#!/usr/bin/env python3
"""Train the three toy denoisers of the 2D autoguidance example and export them for autoguide.

    /usr/bin/python3 scripts/experiments/toy/train.py --outdir models/toy

roles (the paper's three models; see models/toy/README.md for why the labels look like this):
  main    class A (label_dim 1: a net that knows one class), hidden 64, 4096 iterations
  guide   class A (label_dim 1), hidden 32, 512 iterations (1/8): the "bad version" for autoguidance
  uncond  classes A and B together, no label (label_dim 0), hidden 32, 512 iterations: the CFG guide

Training is exact score matching (the paper's App. C): the target is the ground-truth score of the
sigma-smoothed mixture, the loss sigma^2 |s_gt - s_net|^2 averaged over the two dimensions, sigma log-normal.

Why a pool: the exact score costs a pass over all 1016 components per point, which on a CPU costs far more
than the net's step. So the (x, sigma, score) triples are drawn and scored once, up front, and every
iteration takes a random batch of them. The loss is the same expectation, estimated from a fixed 2^20-point
sample instead of fresh ones; that is far larger than what 16k-parameter nets could memorise.
"""

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402
from autoguide_py.phema import PowerFunctionEMA  # noqa: E402
import fractal  # noqa: E402
from model import ToyDenoiser  # noqa: E402

COMMON = dict(batch_size=4096, lr_ref=1e-2, lr_iter=512, P_mean=-2.3, P_std=1.5, ema_std=0.010,
              sigma_data=0.5, num_layers=4, seed=0)
ROLES = {
    'main': dict(classes='A', label_dim=1, hidden_dim=64, iterations=4096),
    'guide': dict(classes='A', label_dim=1, hidden_dim=32, iterations=512),
    'uncond': dict(classes='AB', label_dim=0, hidden_dim=32, iterations=512),
}
POOL_SEED = 1234


def build_pool(size, seed=POOL_SEED, chunk=1 << 14, log=print):
    """size noisy points of classes A and B with their exact scores under A, B and A+B.

    Points come from the A+B mixture at a log-normal sigma, so each class appears in proportion to its
    weight, and a point of class c is a draw from p_c(x; sigma): right for the conditional nets (target
    s_c) and, taken all together, for the unconditional one (target s_AB)."""
    gen = torch.Generator().manual_seed(seed)
    ab = fractal.ground_truth('AB', 'float32')
    per_class = {c: fractal.ground_truth(c, 'float32') for c in 'AB'}
    is_b = torch.as_tensor(fractal.components()['cls'][fractal.selection('AB')] == 'B')
    # Class weights inside A+B: the mixture weight of B's components, renormalised over both classes.
    log_prior_b = math.log(float(ab.phi[is_b].sum()))
    log_prior_a = math.log(float(ab.phi[~is_b].sum()))
    sigma = (torch.randn(size, generator=gen) * COMMON['P_std'] + COMMON['P_mean']).exp()
    x, comp = ab.sample(size, sigma, generator=gen, return_components=True)
    cls = is_b[comp].long()
    score_a, score_b, logp_a, logp_b = [], [], [], []
    start = time.time()
    for i in range(0, size, chunk):
        xs, ss = x[i:i + chunk], sigma[i:i + chunk]
        for c, logps, scores in (('A', logp_a, score_a), ('B', logp_b, score_b)):
            lp, sc = per_class[c].logp_and_score(xs, ss)
            logps.append(lp)
            scores.append(sc)
        if (i // chunk) % 16 == 15:
            log(f'  pool {i + chunk}/{size} points, {time.time() - start:.0f} s')
    score_a, score_b = torch.cat(score_a), torch.cat(score_b)
    # Posterior class probability at x, then s_AB = P(A|x) s_A + P(B|x) s_B.
    p_b = torch.sigmoid((torch.cat(logp_b) + log_prior_b) - (torch.cat(logp_a) + log_prior_a))[:, None]
    score_ab = (1 - p_b) * score_a + p_b * score_b
    score_cls = torch.where(cls[:, None] == 1, score_b, score_a)
    return dict(x=x, sigma=sigma, cls=cls, score_cls=score_cls, score_ab=score_ab)


def train(role, pool, log=print, **overrides):
    cfg = dict(COMMON, **ROLES.get(role, {}), role=role)
    cfg.update(overrides)
    torch.manual_seed(cfg['seed'])
    net = ToyDenoiser(cfg['hidden_dim'], cfg['num_layers'], cfg['label_dim'], cfg['sigma_data']).train()
    ema = PowerFunctionEMA(net, [cfg['ema_std']])
    opt = torch.optim.Adam(net.parameters(), betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg['seed'] + 1)
    # One class alone, or both with labels: each point's own class score. Both without labels: s_AB.
    target = pool['score_ab'] if cfg['classes'] == 'AB' and not cfg['label_dim'] else pool['score_cls']
    usable = torch.arange(len(pool['x']))
    if len(cfg['classes']) == 1:
        usable = usable[pool['cls'] == fractal.CLASSES.index(cfg['classes'])]
    n_pool = len(usable)
    # Label index of each pool class within this net's classes (a one-class net sees label 0 throughout).
    label_of = torch.tensor([cfg['classes'].find(c) for c in fractal.CLASSES])
    if cfg['label_dim'] and cfg['label_dim'] != len(cfg['classes']):
        raise ValueError(f"label_dim {cfg['label_dim']} does not match classes {cfg['classes']!r}")
    start = time.time()
    for it in range(cfg['iterations']):
        lr = cfg['lr_ref'] / math.sqrt(max(it / cfg['lr_iter'], 1))  # inverse-sqrt decay after a constant phase
        for group in opt.param_groups:
            group['lr'] = lr
        idx = usable[torch.randint(n_pool, [cfg['batch_size']], generator=gen)]
        x, sigma = pool['x'][idx], pool['sigma'][idx]
        labels = None
        if cfg['label_dim']:
            labels = torch.nn.functional.one_hot(label_of[pool['cls'][idx]], cfg['label_dim']).float()
        net.force_normalize()
        score = net.score(x, sigma, labels)
        loss = (sigma.square() * (score - target[idx]).square().mean(-1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(net, nimg=it + 1, batch_size=1)  # counted in iterations
        if (it + 1) % 256 == 0 or it + 1 == cfg['iterations']:
            log(f'  {role} iter {it + 1}/{cfg["iterations"]} loss {loss.item():.4f} lr {lr:.2e} '
                f'{time.time() - start:.0f} s')
    cfg['train_seconds'] = round(time.time() - start, 1)
    cfg['pool_size'] = len(pool['x'])
    cfg['pool_points_used'] = n_pool
    cfg['pool_seed'] = POOL_SEED
    return ema.nets[0], cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--outdir', default='models/toy')
    ap.add_argument('--roles', default='main,guide,uncond', help='comma-separated subset of ' + ','.join(ROLES))
    ap.add_argument('--pool-size', type=int, default=1 << 20)
    ap.add_argument('--threads', type=int, default=1,
                    help='torch CPU threads (more than 1 only helps on an otherwise idle machine)')
    args = ap.parse_args(argv)
    roles = args.roles.split(',')
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        ap.error(f'unknown role {unknown[0]} (known: {", ".join(ROLES)})')
    torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, flush=True)

    t0 = time.time()
    log(f'building the training pool ({args.pool_size} points)')
    pool = build_pool(args.pool_size, log=log)
    pool_seconds = time.time() - t0
    log(f'pool: {pool_seconds:.0f} s')
    summary = {}
    for role in roles:
        ema_net, cfg = train(role, pool, log=log)
        path = os.path.join(args.outdir, role + '.pt')
        export.export(ema_net, path, cfg)
        summary[role] = dict(file=path, sha256=export.sha256_file(path),
                             params=ema_net.param_count(), seconds=cfg['train_seconds'])
        log(f'wrote {path} ({cfg["train_seconds"]:.0f} s)')
    log(json.dumps(dict(pool_seconds=round(pool_seconds, 1), total_seconds=round(time.time() - t0, 1),
                        models=summary), indent=1))


if __name__ == '__main__':
    main()
