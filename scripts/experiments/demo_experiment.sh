#!/usr/bin/env bash
# The demo experiment of docs/experiments.md: choose the post-hoc EMA lengths, then FD against the guidance
# weight for autoguidance and CFG on the demo models, all through the CLI.
#
#   scripts/experiments/demo_experiment.sh ema    # EMA_m and EMA_g by FD (needs the training snapshots, out/demo-train)
#   scripts/experiments/demo_experiment.sh sweep  # FD vs w, NUM samples per point, into out/demo-experiment
#
# Environment: NUM (default 2000), EMA_NUM (500), STEPS (32), DTYPE (fp32), THREADS (2), WEIGHTS (w list of the sweep),
# AG_W (the w of the guide EMA choice), EMA_M (the main EMA it uses).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=$(scripts/dev/find_python.sh)
OUT=out/demo-experiment
STEPS=${STEPS:-32}
DTYPE=${DTYPE:-fp32}
metric=(--detector models/demo/detector.pt --ref models/demo/fmnist-train-stats.npz --steps "$STEPS"
        --dtype "$DTYPE" --batch 250 --threads "${THREADS:-2}" --overwrite)

export_ema() {  # role stds...: post-hoc EMAs of one role's snapshots as model files in $OUT/ema
  local role=$1; shift
  local stds; stds=$(IFS=,; echo "$*")
  "$PY" scripts/phema.py --indir out/demo-train/"$role" --outstd "$stds" --outdir "$OUT/ema/$role" \
    --outprefix "$role" >/dev/null
  for s in "$@"; do
    local f; f=$(ls "$OUT/ema/$role/$role"-*-"$(printf %.3f "$s")".pt)
    "$PY" scripts/export_edm2.py "$f" "$OUT/ema/$role-$(printf %.3f "$s").pt" -q
  done
}

case "${1:-}" in
  ema)
    NUM=${EMA_NUM:-500}
    export_ema main 0.05 0.10 0.15 0.20
    export_ema guide 0.05 0.10 0.15 0.20
    # EMA_m: the unguided FD of each main EMA (w = 1 never calls the guide).
    for s in 0.050 0.100 0.150 0.200; do
      build/autoguide sweep --net "$OUT/ema/main-$s.pt" --gnet "$OUT/ema/guide-0.050.pt" --guidance 1 \
        --num "$NUM" "${metric[@]}" --outdir "$OUT/ema/fd-main-$s" -q
      echo "main EMA $s: FD $(tail -1 "$OUT/ema/fd-main-$s/results.csv" | cut -d, -f5)"
    done
    # EMA_g: autoguidance FD at w = AG_W with the chosen main EMA, every guide EMA in one sweep.
    guides=$(ls "$OUT"/ema/guide-0.*.pt | paste -sd,)
    build/autoguide sweep --net "$OUT/ema/main-${EMA_M:-0.100}.pt" --gnet "$guides" --guidance "${AG_W:-2}" \
      --num "$NUM" "${metric[@]}" --outdir "$OUT/ema/fd-guide" -q
    cat "$OUT/ema/fd-guide/results.csv"
    ;;
  sweep)
    # One sweep, both guides: the unguided setting (w = 1) is sampled once, and fd.png has one curve per mode.
    NUM=${NUM:-2000}
    build/autoguide sweep --net models/demo/main.pt --gnet models/demo/guide.pt,models/demo/uncond.pt \
      --guidance "${WEIGHTS:-1,1.25,1.5,2,2.5,3}" --num "$NUM" "${metric[@]}" --outdir "$OUT/sweep"
    cat "$OUT/sweep/results.csv"
    ;;
  *)
    echo "usage: scripts/experiments/demo_experiment.sh ema|sweep" >&2
    exit 2
    ;;
esac
