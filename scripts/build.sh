#!/usr/bin/env bash
# Configures and builds build/autoguide and the tests; with --cli first, only the command-line tool.
# Other arguments go to CMake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=()
if [ "${1:-}" = "--cli" ]; then
  TARGET=(--target autoguide)
  shift
fi
PY=$(scripts/dev/find_python.sh)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAUTOGUIDE_PYTHON="$PY" "$@" >/dev/null
cmake --build build -j"$(nproc)" "${TARGET[@]}"
