#!/usr/bin/env bash
# search_bench.sh — build bench/search_bench.c and run the optimizer benchmark (issue 6).
#
#   bash bench/search_bench.sh [search_bench args, e.g. --seeds 5 --n 200]
#
# Builds straight from the sources with gcc (no CMake target: bench/ is not globbed),
# into build-search/ (override with BUILD=dir), then prints the machine (CPU model, cores,
# load average: the numbers are wall times on a possibly shared machine) and the table
# that bench/RESULTS.md records.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-search}
mkdir -p "$BUILD"
gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Iinclude -Isrc -I/usr/include/libsvm \
    bench/search_bench.c src/search/[a-z]*.c src/util/rng.c src/util/error.c src/util/sobol.c \
    -llapacke -lopenblas -lsvm -lm -o "$BUILD/search_bench"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
     "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/search_bench" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
