#!/usr/bin/env python3
"""Convert the Stable Diffusion VAE (sd-vae-ft-mse) to the TorchScript decoder autoguide uses for latent models.

    scripts/export_vae.py IN OUT.pt [--verify]

IN: diffusers diffusion_pytorch_model.safetensors / .bin, or CompVis vae-ft-mse-840000-ema-pruned
.safetensors / .ckpt. Exit status: 0 success, 2 bad input (one `error:` line on stderr), 1 unexpected failure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from autoguide_py.pyenv import ensure_torch  # noqa: E402

ensure_torch()

from autoguide_py.vae import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
