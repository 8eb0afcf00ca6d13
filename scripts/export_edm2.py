#!/usr/bin/env python3
"""Convert an EDM2 network pickle or an autoguide checkpoint to a TorchScript model file.

    scripts/export_edm2.py IN.pkl OUT.pt [--kimg N] [--ema-std S] [--verify]

Exit status: 0 success, 2 bad input (one `error:` line on stderr), 1 unexpected failure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

from autoguide_py.export import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
