"""CUDA paths (run by scripts/bench/gpu_check.sh on a GPU machine; skipped elsewhere): per-seed CUDA Philox
generators as PyTorch's Python API draws them, and the UNet in fp16 as EDM2 runs it on CUDA."""
import os
import subprocess

import numpy as np
import pytest
import torch

import edm_sampler_ref as ref
import model_fixtures

from cli import BIN  # noqa: E402
pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and os.path.exists(BIN)),
                                reason='needs a CUDA device and build/autoguide')


def cuda_draw(seeds, channels, res, label_dim):
    gens = [torch.Generator('cuda').manual_seed(s % (1 << 32)) for s in seeds]
    noise = torch.stack([torch.randn([channels, res, res], generator=g, device='cuda') for g in gens])
    classes = torch.stack([torch.randint(label_dim, size=[], generator=g, device='cuda') for g in gens])
    return gens, noise, torch.nn.functional.one_hot(classes, label_dim).float()


@pytest.mark.parametrize('dtype', ['auto', 'fp32'])
def test_cuda_generate_matches_python_on_cuda(dtype, tmp_path):
    torch._C._set_graph_executor_optimize(False)
    main = model_fixtures.export_role('main', str(tmp_path))[1]
    guide = model_fixtures.export_role('guide', str(tmp_path))[1]
    seeds = [0, 5, 123456789]
    r = subprocess.run([BIN, 'generate', '--net', main, '--gnet', guide, '--guidance', '2.1', '--seeds',
                        '0,5,123456789', '--steps', '10', '--device', 'cuda', '--dtype', dtype,
                        '--npy', str(tmp_path / 'x.npy'), '--quiet'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ours = np.load(tmp_path / 'x.npy')
    nets = []
    for path in (main, guide):
        n = torch.jit.load(path, map_location='cuda')
        if dtype == 'fp32':
            n.force_dtype = 6  # torch.float32
        n.prepare()
        nets.append(n)
    out = []
    with torch.no_grad():
        for s in seeds:
            gens, noise, labels = cuda_draw([s], 3, model_fixtures.RES, model_fixtures.LABELS)
            out.append(ref.sample(nets[0], noise, labels, gens, gnet=nets[1], w=2.1, num_steps=10).cpu())
    expected = torch.cat(out).numpy()
    # Same TorchScript graph and noise on the same device; the batch differs (3 here, 1 per seed in Python), so
    # cuDNN may pick other kernels: fp16 rounding, and TF32 in 'fp32' (PyTorch's default for convolutions).
    # Measured on an H200: 1.8e-3 at most (max |x| 10.7). Noise from another stream would differ by O(1).
    assert np.abs(ours - expected).max() < 2e-3 * max(1.0, np.abs(expected).max())
    # CPU noise is a different stream: a CUDA run that used the CPU generator would not match.
    cpu_noise = torch.randn([3, 8, 8], generator=torch.Generator().manual_seed(0))
    cuda_noise = torch.randn([3, 8, 8], generator=torch.Generator('cuda').manual_seed(0), device='cuda').cpu()
    assert not torch.equal(cpu_noise, cuda_noise)
