#!/usr/bin/env bash
# The main job: install what is missing, build the CLI, and compare no guidance, CFG and autoguidance on
# the embedded demo models (models/demo: EDM2 networks trained on Fashion-MNIST by scripts/train_demo.py).
# Writes out/demo/compare.png (one labelled row per mode, 8 seeds) and prints the FD of each row in two feature
# spaces: the demo classifier's (fd[detector], the FID of this data set) and an autoencoder's (fd[encoder], the
# second space, as the paper adds FD_DINOv2 to FID).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh --cli
# The weights of the presets in configs/demo.json: the best FD of each mode in docs/experiments.md.
PY=$(scripts/find_python.sh)
read -r AG CFG < <("$PY" -c 'import json, sys; p = json.load(open(sys.argv[1]))["presets"]
print(p["demo-fmnist-autog"]["guidance"], p["demo-fmnist-cfg"]["guidance"])' configs/demo.json)
# The experiment's sampling settings (12 Heun steps, bf16), so the weights are its measured optima and the
# FD of NUM samples per row takes about a minute on 2 cores; DEMO_NUM=2000 reproduces docs/experiments.md.
# bf16 only where the CPU computes it natively (AVX512-BF16 or AMX): elsewhere LibTorch emulates it about 8x
# slower than fp32 (measured on an AVX2-only EPYC), and fp32 gives the same FD within sampling noise.
NUM=${DEMO_NUM:-128}
if [ -z "${DEMO_DTYPE:-}" ]; then
  DEMO_DTYPE=fp32
  grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo 2>/dev/null && DEMO_DTYPE=bf16
fi
mkdir -p out/demo
echo "sampling ${NUM} images per row in ${DEMO_DTYPE} (no guidance, CFG w=${CFG}, autoguidance w=${AG}) for the FD; grid shows seeds 0-7" >&2
build/autoguide compare --net models/demo/main.pt --gnet models/demo/guide.pt --ag "$AG" \
  --uncond models/demo/uncond.pt --cfg "$CFG" --num "$NUM" --grid-cols 8 \
  --steps 12 --dtype "$DEMO_DTYPE" --detector models/demo/detector.pt --ref models/demo/fmnist-train-stats.npz \
  --detector models/demo/encoder.pt --ref models/demo/fmnist-train-stats-encoder.npz \
  --out out/demo/compare.png --overwrite
echo "out/demo/compare.png"
