#!/usr/bin/env bash
# Prints the path of a Python that can import torch (Debian's python3-torch lives in /usr/bin/python3,
# which need not be the python3 first on PATH). Exits 2 with a hint when there is none.
for py in "${AUTOGUIDE_PYTHON:-}" python3 /usr/bin/python3; do
  [ -n "$py" ] || continue
  if command -v "$py" >/dev/null 2>&1 && "$py" -c "import torch" >/dev/null 2>&1; then
    command -v "$py"
    exit 0
  fi
done
echo "error: no Python with PyTorch found; run scripts/setup.sh (installs python3-torch) or set AUTOGUIDE_PYTHON" >&2
exit 2
