#!/usr/bin/env bash
# Installs what is missing, builds Pollux, and runs the demo: one producer and
# embedded workers pushing a million tasks through a region.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/deps
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
exec build/px_demo "$@"
