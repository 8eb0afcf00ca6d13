#!/usr/bin/env bash
# Fuzzes every parser of outside input: each libFuzzer harness of tests/fuzz (built with ASan + UBSan into
# build-asan) for a while, then the hypothesis property tests of the Python readers (restricted unpickler,
# torch.save zip reader, safetensors reader) with many examples.
#   scripts/dev/fuzz.sh [--time SECONDS] [--examples N] [TARGET...]    (defaults: 60 s per target, 2000 examples;
#                                                                    targets: seed_list npy png ..., or python)
# New inputs go to build-asan/fuzz-corpus/<target>, crashes to build-asan/fuzz-artifacts/ (the run then fails);
# copy a crash into tests/fuzz/corpus/<target>/ once it is fixed, so that CI keeps trying it.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET=60
EXAMPLES=2000
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) SECONDS_PER_TARGET=$2; shift 2 ;;
    --examples) EXAMPLES=$2; shift 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=($(ls tests/fuzz/corpus) python)
PY=$(scripts/dev/find_python.sh)
scripts/dev/sanitize.sh --build
source tests/sanitize/env.sh
status=0
for t in "${TARGETS[@]}"; do
  if [ "$t" = python ]; then
    AUTOGUIDE_PROPERTY_EXAMPLES=$EXAMPLES "$PY" -m pytest tests/python/test_reader_properties.py -q \
      -p no:cacheprovider || status=1
    continue
  fi
  mkdir -p "build-asan/fuzz-corpus/$t" build-asan/fuzz-artifacts
  log="build-asan/fuzz-artifacts/$t.log"
  if ! "build-asan/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="build-asan/fuzz-artifacts/$t-" \
      "build-asan/fuzz-corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    status=1
    echo "fuzz $t: FAILED, see $log" >&2
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz $t: ${runs:-?} inputs in $SECONDS_PER_TARGET s, corpus $(ls "build-asan/fuzz-corpus/$t" | wc -l) new"
done
exit $status
