#!/usr/bin/env bash
# Builds Pollux three ways and runs the whole test suite in each:
#   build/       release build with debug info: every test
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: every test
#   build-tsan/  ThreadSanitizer: the unit tests (the integration tests kill
#                and stop processes at random, which TSan cannot follow
#                across fork)
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
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run build-asan "" -DPOLLUX_ASAN=ON
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run build-tsan unit -DPOLLUX_TSAN=ON
echo "all test suites passed"
