#!/usr/bin/env python3
"""One process against several on this machine: images per second of `autoguide generate`, and the share of
each rank's time spent meeting the others (rendezvous), waiting for them and in c10d collectives (from the
merged manifest's "ranks" entry). Then the cost of one FD reduction at Inception's 2048 features, from a
`sweep` with a 2048-feature detector on tiny nets (results.json "ranks").

The ranks are started here with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), one
thread each, so that Python's start-up under torchrun is not counted.

  scripts/bench/bench_ranks.py --res 32 --seeds 0-7 --batch 8 --ranks 2
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),  # this folder's modules
                os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # scripts/: autoguide_py
import bench_generate  # noqa: E402  (its S and XS nets; it makes sure torch is importable)

import torch  # noqa: E402

ROOT = bench_generate.ROOT


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_ranks(binary, args, world):
    """Runs `world` ranks (or one plain process for world 1); returns the wall seconds until all ended."""
    port = free_port()
    envs = [dict(os.environ, OMP_NUM_THREADS='1')] if world == 1 else [
        dict(os.environ, RANK=str(r), WORLD_SIZE=str(world), MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
             OMP_NUM_THREADS='1') for r in range(world)]
    start = time.perf_counter()
    procs = [subprocess.Popen([binary, *args], env=env) for env in envs]
    if any(p.wait() for p in procs):
        raise SystemExit(f'autoguide failed: {" ".join(args)}')
    return time.perf_counter() - start


def shares(entry, wall):
    return {k: entry[f'{k}_seconds'] / wall for k in ('rendezvous', 'waiting', 'collective')}


def generate_runs(a, paths, work):
    args = ['generate', '--net', paths['main'][1], '--gnet', paths['guide'][1], '--guidance', '2.1', '--seeds', a.seeds,
            '--batch', str(a.batch), '--threads', '1', '--device', 'cpu', '--quiet', '--overwrite']
    n = len(bench_generate.parse_seeds(a.seeds))
    for world in (1, a.ranks):
        out = os.path.join(work, f'gen{world}')
        wall = run_ranks(a.binary, [*args, '--outdir', out], world)
        with open(os.path.join(out, 'manifest.json')) as f:
            manifest = json.load(f)
        print(f'{world} process(es): {wall:.1f} s for {n} images, {n / wall:.4f} images/s '
              f'(sampling {manifest["seconds"]:.1f} s on rank 0)')
        for e in manifest.get('ranks', {}).get('ranks', []):
            s = shares(e, wall)
            print(f'  rank {e["rank"]}: {e["images"]} images in {e["seconds"]:.1f} s; rendezvous {e["rendezvous_seconds"]:.3f} s '
                  f'({100 * s["rendezvous"]:.2f}%), collectives {e["collective_seconds"]:.4f} s '
                  f'({100 * s["collective"]:.3f}%), waiting for the other rank {e["waiting_seconds"]:.2f} s '
                  f'({100 * s["waiting"]:.1f}%)')
    if os.path.isdir(os.path.join(work, 'gen1')):
        same = all(open(os.path.join(work, 'gen1', f), 'rb').read() == open(os.path.join(work, f'gen{a.ranks}', f), 'rb').read()
                   for f in os.listdir(os.path.join(work, 'gen1')) if f.endswith('.png'))
        print(f'PNGs of {a.ranks} ranks byte-identical to one process: {same}')


class Features2048(torch.nn.Module):
    """A stand-in for Inception-v3's 2048 features: only the size of the statistics matters here."""

    def __init__(self, pixels):
        super().__init__()
        self.register_buffer('w', torch.randn([pixels, 2048], generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return x.float().flatten(1) @ self.w


def fd_reduction(a, work):
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'python'))
    import model_fixtures
    nets = {r: model_fixtures.export_role(r, work)[1] for r in ('main', 'guide')}
    res = model_fixtures.RES
    det = os.path.join(work, 'det2048.pt')
    torch.jit.script(Features2048(3 * res * res)).save(det)
    images = os.path.join(work, 'ref.npy')
    import numpy as np
    np.save(images, np.random.default_rng(0).integers(0, 256, size=(64, 3, res, res), dtype=np.uint8))
    common = ['--device', 'cpu', '--threads', '1', '--quiet']
    run_ranks(a.binary, ['ref', '--detector', det, '--images', images, '--out', os.path.join(work, 'ref.npz'),
                         '--overwrite', *common], 1)
    out = os.path.join(work, 'sweep')
    wall = run_ranks(a.binary, ['sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '2',
                                '--seeds', '0-63', '--steps', '4', '--detector', det, '--ref',
                                os.path.join(work, 'ref.npz'), '--outdir', out, '--overwrite', *common], a.ranks)
    with open(os.path.join(out, 'results.json')) as f:
        ranks = json.load(f)['ranks']['ranks']
    for e in ranks:
        print(f'FD of one setting, 2048 features, rank {e["rank"]} of {a.ranks}: collectives {e["collective_seconds"]:.3f} s '
              f'(statistics all-reduced, first images gathered), rendezvous {e["rendezvous_seconds"]:.3f} s, '
              f'of {wall:.1f} s')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--binary', default=os.path.join(ROOT, 'build', 'autoguide'))
    ap.add_argument('--work', default=os.path.join(ROOT, 'out', 'bench_ranks'))
    ap.add_argument('--res', type=int, default=32)
    ap.add_argument('--seeds', default='0-7')
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--ranks', type=int, default=2)
    ap.add_argument('--skip-generate', action='store_true', help='only the FD reduction at 2048 features')
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    if not a.skip_generate:
        generate_runs(a, bench_generate.make_models(a.work, a.res, 3, 1000), a.work)
    with tempfile.TemporaryDirectory(dir=a.work) as tmp:
        fd_reduction(a, tmp)
    shutil.rmtree(os.path.join(a.work, 'sweep'), ignore_errors=True)


if __name__ == '__main__':
    main()
