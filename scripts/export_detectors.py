#!/usr/bin/env python3
"""Write EDM2's metric detectors (FID Inception-v3, FD_DINOv2 ViT-L/14) as TorchScript files for autoguide.

    scripts/export_detectors.py --out-dir DIR [--which inception,dinov2]
        [--inception-file inception-2015-12-05.pt] [--dinov2-repo DIR] [--dinov2-weights FILE]

Needs internet unless the inputs are local files. EDM2's inception-2015-12-05.pkl is refused (it runs
code when unpickled); NVIDIA's TorchScript inception-2015-12-05.pt is used instead; see
autoguide_py/detectors.py. Exit status: 0 success, 2 bad input or failed download (one `error:` line on
stderr), 1 unexpected failure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

from autoguide_py.detectors import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
