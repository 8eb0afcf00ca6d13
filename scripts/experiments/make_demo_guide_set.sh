#!/usr/bin/env bash
# The demo guide's snapshot set, models/demo/guide-set.pt: train_demo.py retrains the guide (its recipe and seed;
# the 16 power-function EMA snapshots, 8 lengths x std 0.050/0.100, land in WORKDIR/guide) and
# export_phema_set.py converts them. The retrained guide's post-hoc EMA goes to a scratch folder, not over
# models/demo/guide.pt (bf16/fp32 training on another CPU gives other bits).
#     scripts/experiments/make_demo_guide_set.sh [WORKDIR]       # default out/demo-guide-set
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-out/demo-guide-set}
PY=$(scripts/dev/find_python.sh)
mkdir -p "$WORK"
"$PY" scripts/experiments/train_demo.py --roles guide --workdir "$WORK" --outdir "$WORK/export" --threads "${THREADS:-2}"
"$PY" scripts/export_phema_set.py "$WORK/guide" models/demo/guide-set.pt
