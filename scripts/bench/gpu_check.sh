#!/usr/bin/env bash
# The CUDA checks, in one short run on a GPU machine that has PyTorch (and its LibTorch) but none of our
# Debian packages: build against PyTorch's LibTorch with the header-only dependencies carried in .deps/include
# (copy /usr/include/{CLI,nlohmann,stb} there), run the CUDA tests, then benchmark against NVIDIA's reference
# (a local copy of NVlabs/edm2 in .edm2ref/, never committed) on the same GPU.
#   scripts/bench/gpu_check.sh [OUTDIR]      figures go to OUTDIR/gpu_check.json and the log
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-out/gpu_check}
mkdir -p "$OUT"
PY=${AUTOGUIDE_PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

PREFIX=$($PY -c "import torch; print(torch.utils.cmake_prefix_path)")
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
start=$(date +%s)
cmake -S . -B build-gpu "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DAUTOGUIDE_EXTRA_INCLUDE="$PWD/.deps/include" -DAUTOGUIDE_BUILD_TESTS=OFF >"$OUT/cmake.log" 2>&1 \
  || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" >"$OUT/build.log" 2>&1 || { grep -m20 -A5 error "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

AUTOGUIDE_BIN="$PWD/build-gpu/autoguide" $PY -m pytest -q -p no:cacheprovider tests/python/test_cuda.py \
  tests/python/test_generate_cli.py -k "cuda or sampler_matches" 2>&1 | tail -15

# ImageNet-64-architecture S main + XS guide at 64x64, batch 32, autoguidance; fp16 UNet as the reference.
$PY scripts/bench/bench_generate.py --edm2 .edm2ref --binary build-gpu/autoguide --device cuda --res 64 \
  --seeds 0-31 --batch 32 --repeats 2 --work "$OUT/bench" --threads "$(nproc)" | tee "$OUT/gpu_check.json"
rm -rf "$OUT/bench"
