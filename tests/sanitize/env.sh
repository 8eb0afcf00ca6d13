# Sanitizer settings for runs of build-asan (sourced by scripts/dev/sanitize.sh and scripts/dev/fuzz.sh).
# Any report ends the process with status 99, which no autoguide run returns by itself (0, 1 or 2), so a finding
# in a run that is expected to fail still fails the check. LibTorch is not instrumented; the one finding inside
# it so far (GeneratorImpl::clone leaks its clone, LeakSanitizer) is avoided in our code rather than suppressed.
# No run-time suppressions; the one compile-time exception (in stb_image) is in ignorelist.txt.
export ASAN_OPTIONS="exitcode=99:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=99"
if [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
