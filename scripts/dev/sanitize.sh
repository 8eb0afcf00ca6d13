#!/usr/bin/env bash
# Builds autoguide, its C++ tests and the libFuzzer harnesses with AddressSanitizer + UndefinedBehaviorSanitizer
# (clang, into build-asan), then runs under them: the C++ tests and every fuzz target for a bounded number of
# inputs (ctest), and a CLI smoke set of generate/sweep/info/ref/fid runs and bad inputs (tests/sanitize/cli_smoke.py).
# Any sanitizer report fails the run. Settings: tests/sanitize/env.sh; what is checked and why: docs/sanitizers.md.
#   scripts/dev/sanitize.sh [--build]     (--build: only configure and build build-asan, as scripts/dev/fuzz.sh does)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=$(scripts/dev/find_python.sh)
source tests/sanitize/env.sh
CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DAUTOGUIDE_FUZZ=ON \
  -DAUTOGUIDE_PYTHON="$PY" >/dev/null
cmake --build build-asan -j"$(nproc)"
[ "${1:-}" = "--build" ] && exit 0
(cd build-asan && ctest --output-on-failure -j"$(nproc)")
"$PY" tests/sanitize/cli_smoke.py build-asan/autoguide build-asan/fixtures
