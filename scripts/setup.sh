#!/usr/bin/env bash
# Installs every system package autoguide uses (Debian). Idempotent: quick when all is present.
set -euo pipefail

packages=(
  build-essential cmake g++ pkg-config curl   # curl: scripts/get_edm2.sh downloads
  libtorch-dev libcli11-dev nlohmann-json3-dev libstb-dev libgtest-dev
  clang libclang-rt-14-dev llvm-14   # scripts/dev/sanitize.sh, scripts/dev/fuzz.sh: ASan/UBSan, libFuzzer, llvm-symbolizer
  zlib1g-dev                      # deflated .npz members (statistics written by numpy.savez_compressed)
  libgloo-dev                     # Gloo's headers, for c10d's CPU process group (many ranks)
  openmpi-bin slurm-wlm munge     # launchers the many-rank tests start: mpirun, a one-node Slurm with munge
  libopenblas0-pthread libblas3  # libblas3 (netlib) only for the test that the slow-BLAS warning fires; Debian's LibTorch links libblas.so.3; netlib BLAS is ~27x slower on 1x1 convs
  python3 python3-torch python3-numpy python3-pytest python3-scipy python3-hypothesis
  python3-pil python3-click python3-tqdm python3-psutil python3-requests   # to run NVIDIA's reference beside ours (benchmarks)
  dataset-fashion-mnist
  chromium chromium-driver python3-selenium fonts-dejavu-core   # report.html is tested in a real headless browser
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
