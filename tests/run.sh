#!/usr/bin/env bash
# Builds Pollux three ways and runs the whole test suite in each:
#   build/       release build with debug info: every test
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: every test
#   build-tsan/  ThreadSanitizer: the stress programs (tests/stress/ and the
#                examples): Criterion cannot start under ThreadSanitizer, so
#                the Criterion suites run in the other two builds
# Installs missing Debian packages first. Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/deps
jobs=$(nproc)

run() {
  local dir=$1 label=$2
  shift 2
  echo "== $dir: configure and build"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs" >/dev/null
  echo "== $dir: tests"
  if [ -n "$label" ]; then
    ctest --test-dir "$dir" --output-on-failure -L "$label"
  else
    ctest --test-dir "$dir" --output-on-failure
  fi
}

run build ""
# Some tests crash process-pool children on purpose and check that the task
# reports the signal: ASan must let those signals kill the child instead of
# turning them into a report and exit status 1.
# A child whose task calls exit() is leak-checked too; tests/lsan.supp names
# the test framework's allocations it inherited.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:handle_segv=0:handle_abort=0 \
  LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run build-asan "" -DPOLLUX_ASAN=ON
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run build-tsan stress -DPOLLUX_TSAN=ON
echo "all test suites passed"
