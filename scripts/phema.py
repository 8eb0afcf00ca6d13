#!/usr/bin/env python3
"""Post-hoc EMA: rebuild an EMA of any length from power-function EMA snapshots (EDM2 Sec. 3.2).

    scripts/phema.py --indir SNAPSHOTS --outstd 0.05,0.075,0.1 --outdir OUT [--outkimg K]

Inputs are the snapshots a training run saved, named <prefix>-<kimg>-<std>.pt (scripts/experiments/train_demo.py)
or <prefix>-<kimg>-<std>.pkl (EDM2's raw snapshots, read without running any code in them). Each
output is an autoguide checkpoint <outprefix>-<kimg>-<std>.pt that scripts/export_edm2.py converts.
Exit status: 0 success, 2 bad input (one `error:` line on stderr), 1 unexpected failure.
"""

import argparse
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

from autoguide_py import phema, phema_set, training  # noqa: E402
from autoguide_py.errors import ExportError  # noqa: E402
from autoguide_py.export import build_precond, run_reporting_errors  # noqa: E402

_NAME = re.compile(r'^(.*)-(\d+)-(\d+\.\d+)\.(pkl|pt)$')


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f'error: {message} (see --help)', file=sys.stderr)
        sys.exit(2)


def parse_stds(text):
    """'0.05,0.1' or a range 'a,b,...,c' (EDM2's notation: evenly spaced from a by b-a up to c)."""
    parts = [p.strip() for p in text.split(',') if p.strip()]
    try:
        if len(parts) == 4 and parts[2] == '...':
            a, b, c = float(parts[0]), float(parts[1]), float(parts[3])
            if b <= a:
                raise ExportError(f'--outstd range {text}: the second value must exceed the first')
            n = int(round((c - a) / (b - a)))
            values = [round(a + i * (b - a), 6) for i in range(n + 1)]
        else:
            values = [float(p) for p in parts]
    except ValueError:
        raise ExportError(f'--outstd {text!r} is not a list of numbers like 0.05,0.1') from None
    if not values:
        raise ExportError('--outstd is empty; give stds like 0.05,0.1')
    for v in values:
        if not 0 < v < phema.STD_LIMIT:
            raise ExportError(f'--outstd {v} is out of range; EMA stds must be in (0, {phema.STD_LIMIT:.3f})')
    return values


def main(argv=None):
    ap = _Parser(prog='phema.py', description='Reconstruct post-hoc EMA networks from EMA snapshots.')
    ap.add_argument('--indir', required=True, help='folder of <prefix>-<kimg>-<std>.pt or .pkl snapshots')
    ap.add_argument('--inprefix', default=None, help='use only snapshots whose name starts with this')
    ap.add_argument('--outstd', required=True, help='stds to build: 0.05,0.1 or a range 0.05,0.06,...,0.2')
    ap.add_argument('--outdir', required=True)
    ap.add_argument('--outprefix', default='phema')
    ap.add_argument('--outkimg', type=int, default=None, help='training time of the outputs (default: latest)')
    ap.add_argument('--fp32', action='store_true',
                    help="keep the float32 sums (default: stored in the snapshots' dtype, as EDM2 stores them)")
    args = ap.parse_args(argv)

    def run():
        stds = parse_stds(args.outstd)
        if not os.path.isdir(args.indir):
            raise ExportError(f'--indir {args.indir} is not a folder')
        paths = sorted(p for p in glob.glob(os.path.join(args.indir, '*'))
                       if _NAME.match(os.path.basename(p))
                       and (args.inprefix is None or os.path.basename(p).startswith(args.inprefix)))
        if len(paths) < 2:
            raise ExportError(f'{args.indir} holds {len(paths)} snapshot(s) named <prefix>-<kimg>-<std>.pt/.pkl; '
                              f'post-hoc EMA needs at least 2')
        snaps = [phema_set.read_snapshot(p) for p in paths]
        configs = {repr(sorted(s.net.config.items())) for s in snaps}
        if len(configs) != 1:
            raise ExportError(f'the snapshots in {args.indir} are of different architectures; use --inprefix')
        out_nimg = max(s.nimg for s in snaps) if args.outkimg is None else \
            phema_set.edm2_nimg(args.outkimg) if paths[0].endswith('.pkl') else args.outkimg * 1000
        if not any(0 < s.nimg <= out_nimg for s in snaps):
            raise ExportError(f'no snapshot at or before {out_nimg} images; lower --outkimg')
        buffers = [name for name, _ in snaps[0].net.named_buffers()]
        try:
            states = phema.reconstruct([(s.nimg, s.std, s.net.state_dict()) for s in snaps], stds, out_nimg,
                                       buffers=buffers, keep_fp32=args.fp32)
        except (ValueError, RuntimeError) as e:
            raise ExportError(f'cannot reconstruct: {e}') from None
        os.makedirs(args.outdir, exist_ok=True)
        written = []
        for std, state in zip(stds, states):
            net = build_precond(dict(snaps[0].net.config), state)
            path = os.path.join(args.outdir, f'{args.outprefix}-{out_nimg // 1000:07d}-{std:.3f}.pt')
            training.save_checkpoint(path, net, nimg=out_nimg, ema_std=std, encoder=snaps[0].encoder,
                                     keep_dtype=True)
            written.append(path)
        return written

    status, written = run_reporting_errors(run)
    if status:
        return status
    for path in written:
        print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
