#!/usr/bin/env bash
# Exports the real facebookresearch/dinov2 ViT-L/14 (random weights) from a local clone and compares the
# written detector with the repository's forward under EDM2's preprocessing; see check_real_dinov2.py.
#   scripts/dev/check_real_dinov2.sh DINOV2_SRC [--work DIR] [--autoguide build/autoguide]
# Needs about 6 GB of memory and a few minutes on two cores.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 DINOV2_SRC [--work DIR] [--autoguide BIN]  (DINOV2_SRC: a clone of facebookresearch/dinov2)" >&2
  exit 2
fi
PY=$("$here/find_python.sh")
exec "$PY" "$here/check_real_dinov2.py" "$@"
