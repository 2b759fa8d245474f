#!/usr/bin/env bash
# test.sh — the README's test command: install dependencies, build, run the whole
# suite, then build again with -fsanitize=address,undefined and run it once more.
# The body is one function that bash reads whole before running it (a `git pull`
# while it runs cannot change what it runs).
set -euo pipefail
main() {
  cd "$(dirname "$0")/.."
  bash scripts/deps.sh
  bash scripts/venv.sh
  JOBS=$(nproc)
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j"$JOBS"
  ctest --test-dir build --output-on-failure -j"$JOBS"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGPUNAS_SANITIZE=ON
  cmake --build build-asan -j"$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS"
}
main "$@"
exit
