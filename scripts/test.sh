#!/usr/bin/env bash
# The whole test suite on a fresh machine: install packages, build, run C++ (ctest) and Python (pytest) tests,
# then the sanitizer build: C++ tests, bounded fuzz runs and a CLI smoke set under ASan + UBSan (sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
PY=$(scripts/dev/find_python.sh)
(cd build && ctest --output-on-failure -j"$(nproc)")
AUTOGUIDE_BIN="$PWD/build/autoguide" "$PY" -m pytest tests/python -q -p no:cacheprovider
scripts/dev/sanitize.sh
