#!/usr/bin/env bash
# Downloads what EDM2 presets need and converts it into the models folder, so that
# `autoguide generate --preset NAME` then runs offline:
#   NVIDIA's post-hoc EMA pickles  -> scripts/export_edm2.py -> MODELS/<name>.pt
#   stabilityai/sd-vae-ft-mse      -> scripts/export_vae.py  -> MODELS/sd-vae-ft-mse.pt  (ImageNet-512 presets)
#
#   scripts/get_edm2.sh [--models DIR] [--dry-run] [--keep] PRESET...   ("all" = every preset of configs/edm2.json)
#
# --models: default $AUTOGUIDE_MODELS, else ./models (as autoguide's --models). Files already converted are kept.
# Downloads go to MODELS/downloads/ and are deleted once converted, unless --keep. --dry-run prints every URL
# and target file and changes nothing. The conversions read the downloads with restricted unpicklers and
# check every tensor against the architecture, so a corrupt or foreign download fails there, before use.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
EDM2_URL=https://nvlabs-fi-cdn.nvidia.com/edm2/posthoc-reconstructions
VAE_URL=https://huggingface.co/stabilityai/sd-vae-ft-mse/resolve/main/diffusion_pytorch_model.safetensors
CONFIG="$ROOT/configs/edm2.json"

die() { echo "error: $*" >&2; exit 2; }
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

models="${AUTOGUIDE_MODELS:-models}"
dry_run=0
keep=0
presets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --models) [ $# -ge 2 ] || die "--models needs a folder"; models="$2"; shift 2 ;;
    --models=*) models="${1#--models=}"; shift ;;
    --dry-run|-n) dry_run=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) presets+=("$1"); shift ;;
  esac
done
[ ${#presets[@]} -gt 0 ] || die "name at least one preset, or all (autoguide presets lists them)"

# Plain stdlib Python reads the presets: no PyTorch needed to plan or to --dry-run.
plan_python=""
for py in python3 /usr/bin/python3; do
  command -v "$py" >/dev/null 2>&1 && { plan_python="$py"; break; }
done
[ -n "$plan_python" ] || die "python3 is needed to read $CONFIG"

# One line per file, each once: "net FILE.pt" or "vae FILE.pt".
plan=$("$plan_python" - "$CONFIG" "${presets[@]}" <<'EOF'
import json, sys
config, names = sys.argv[1], sys.argv[2:]
with open(config) as f:
    presets = json.load(f)['presets']
if 'all' in names:
    names = list(presets)
unknown = [n for n in names if n not in presets]
if unknown:
    sys.exit(f"error: unknown preset {', '.join(unknown)} (known: {', '.join(presets)})")
seen = []
for n in names:
    p = presets[n]
    for kind, key in (('net', 'net'), ('net', 'gnet'), ('vae', 'vae')):
        if p.get(key) and (kind, p[key]) not in seen:
            seen.append((kind, p[key]))
for kind, file in seen:
    print(kind, file)
EOF
) || exit 2

downloads="$models/downloads"
if [ $dry_run -eq 0 ]; then
  mkdir -p "$models" "$downloads" || die "cannot create $models"
  PY=$("$ROOT/scripts/dev/find_python.sh") || exit 2
  if command -v curl >/dev/null 2>&1; then
    fetch() { curl -fL --retry 3 -C - -o "$2" "$1"; }
  elif command -v wget >/dev/null 2>&1; then
    fetch() { wget -c -O "$2" "$1"; }
  else
    die "curl or wget is needed (apt-get install curl)"
  fi
fi

step() {  # URL DOWNLOAD TARGET EXPORTER
  local url="$1" dl="$2" target="$3" exporter="$4"
  if [ -e "$target" ]; then
    echo "have     $target"
    return
  fi
  echo "download $url -> $dl"
  echo "convert  $dl -> $target (scripts/$exporter)"
  [ $dry_run -eq 1 ] && return
  mkdir -p "$(dirname "$dl")"
  if [ ! -e "$dl" ]; then
    fetch "$url" "$dl.part" || die "download of $url failed; run again to resume"
    mv "$dl.part" "$dl"
  fi
  echo "sha256   $(sha256sum "$dl" | cut -d' ' -f1)  $dl"
  "$PY" "$ROOT/scripts/$exporter" "$dl" "$target" || die "converting $dl failed; delete it and run again"
  [ $keep -eq 1 ] || rm -f "$dl"
}

while read -r kind file; do
  [ -n "$kind" ] || continue
  if [ "$kind" = net ]; then
    pkl="${file%.pt}.pkl"
    step "$EDM2_URL/$pkl" "$downloads/$pkl" "$models/$file" export_edm2.py
  else
    step "$VAE_URL" "$downloads/sd-vae-ft-mse/diffusion_pytorch_model.safetensors" "$models/$file" export_vae.py
  fi
done <<< "$plan"

[ $dry_run -eq 1 ] || echo "done: ${presets[*]} ready in $models (autoguide generate --preset NAME --models $models)"
