#!/usr/bin/env python3
"""Convert a training run's EMA snapshots into one snapshot set that autoguide builds any post-hoc EMA from.

    scripts/export_phema_set.py SNAPSHOT_DIR OUT.pt [--inprefix PREFIX]

SNAPSHOT_DIR holds <prefix>-<kimg>-<std>.pkl (EDM2's raw snapshots, both EMA profiles) or <prefix>-<kimg>-<std>.pt
(scripts/experiments/train_demo.py's snapshots); nothing in them is executed. Sample with
`autoguide generate --net OUT.pt --net-ema 0.1 ...` (or --gnet OUT.pt --gnet-ema STD). Format: docs/model_format.md.
Exit status: 0 success, 2 bad input (one `error:` line on stderr), 1 unexpected failure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

from autoguide_py import phema_set  # noqa: E402
from autoguide_py.export import CliParser, format_mib, run_reporting_errors  # noqa: E402


def main(argv=None):
    ap = CliParser(prog='export_phema_set.py',
                   description='Convert EMA snapshots (EDM2 raw snapshots or our training checkpoints) into one '
                               'snapshot set file for post-hoc EMA in autoguide. Nothing in the inputs is executed.')
    ap.add_argument('indir', metavar='SNAPSHOT_DIR', help='folder of <prefix>-<kimg>-<std>.pkl or .pt snapshots')
    ap.add_argument('output', metavar='OUT.pt', help='snapshot set to write (replaced atomically)')
    ap.add_argument('--inprefix', default=None, help='use only the snapshots whose <prefix> is this')
    ap.add_argument('-q', '--quiet', action='store_true', help='print nothing on success')
    args = ap.parse_args(argv)

    def progress(text):
        if not args.quiet and sys.stderr.isatty():
            print(f'export_phema_set: {text}', file=sys.stderr, flush=True)

    status, meta = run_reporting_errors(lambda: phema_set.convert(args.indir, args.output, args.inprefix, progress))
    if status:
        return status
    if not args.quiet:
        snaps = meta['snapshots']
        stds = sorted({s['ema_std'] for s in snaps})
        print(f"wrote {args.output}: {format_mib(os.path.getsize(args.output))}, {len(snaps)} snapshots "
              f"({len(snaps) // len(stds)} lengths up to {snaps[-1]['nimg']} images x EMA std "
              f"{', '.join(f'{s:.3f}' for s in stds)})", file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
