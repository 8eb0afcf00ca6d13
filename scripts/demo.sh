#!/usr/bin/env bash
# The main job: install what is missing, build the CLI, and compare no guidance, CFG and autoguidance on
# the embedded demo models (models/demo: EDM2 networks trained on Fashion-MNIST by scripts/experiments/train_demo.py).
# Writes out/demo/compare.png (one labelled row per preset of configs/demo.json, 8 seeds) and prints the FD of
# each row in two feature spaces: the demo classifier's (fd[detector], this data set's FID) and an
# autoencoder's (fd[encoder]), as the paper reports FD_DINOv2 beside FID. Each guided preset has the weight
# that is best in one of the two spaces (docs/experiments.md, "Two feature spaces").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh --cli
# The experiment's sampling settings (12 Heun steps); NUM samples per row for the FD (DEMO_NUM=500 gives the
# presets' reported figures). bf16 only where the CPU computes it natively (AVX512-BF16 or AMX): elsewhere
# LibTorch emulates it about 8x slower than fp32 (measured on an AVX2-only EPYC).
NUM=${DEMO_NUM:-128}
if [ -z "${DEMO_DTYPE:-}" ]; then
  DEMO_DTYPE=fp32
  grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo 2>/dev/null && DEMO_DTYPE=bf16
fi
mkdir -p out/demo
echo "sampling ${NUM} images per row in ${DEMO_DTYPE} for the FD; the grid shows seeds 0-7" >&2
build/autoguide compare --models models --preset demo-fmnist \
  --preset demo-fmnist-cfg-classifier --preset demo-fmnist-autog-classifier \
  --preset demo-fmnist-cfg-encoder --preset demo-fmnist-autog-encoder \
  --num "$NUM" --grid-cols 8 --steps 12 --dtype "$DEMO_DTYPE" \
  --detector models/demo/detector.pt --ref models/demo/fmnist-train-stats.npz \
  --detector models/demo/encoder.pt --ref models/demo/fmnist-train-stats-encoder.npz \
  --out out/demo/compare.png --overwrite
echo "out/demo/compare.png"
