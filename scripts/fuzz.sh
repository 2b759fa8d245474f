#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang in build-fuzz/
# and run each one for SECONDS, one after another, on its corpus tests/fuzz/corpus/NAME/.
#
#   bash scripts/fuzz.sh [SECONDS] [NAME ...]     (default 60 s; default: every harness)
#   bash scripts/fuzz.sh --harvest                (seed candidates from the unit tests)
#   bash scripts/fuzz.sh --minimize [NAME ...]     (re-minimise the corpora, see merge_into)
#
# Each run: -timeout=1 (an input taking over 1 s is a bug), -rss_limit_mb=2048, ASan +
# UBSan, the harness's dictionary tests/fuzz/NAME.dict when there is one.  New inputs go
# to a scratch corpus build-fuzz/scratch/NAME/; afterwards the corpus is re-minimised with
# those of at most FUZZ_MERGE_MAX_BYTES (4096) by -merge=1: seed-* and repro-* files
# stay, the rest is the smallest set that adds edge coverage (FUZZ_MERGE=0: no merge).
# A crash, leak, timeout or out-of-memory input is written to build-fuzz/artifacts/NAME/
# and ends that harness's run.
# Prints one row per harness (seconds, executions, exec/s, corpus files, crashes) and
# exits 1 if any harness crashed.  Runs under `nice -n 10`, one harness at a time.
#
# --harvest relinks the Release build's test programs (build/, gcc) with
# tests/fuzz/harvest_wrap.c, runs them so that every input they give a parser is saved
# under build-fuzz/harvest/inputs/NAME/, and merges those into the corpora as above.
#
# clang and libFuzzer's runtime are installed with apt when missing (like scripts/deps.sh);
# they are needed only here: the CTest tests fuzz_replay_NAME replay the corpora with gcc.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=build-fuzz
MERGE=${FUZZ_MERGE:-1}
MERGE_MAX=${FUZZ_MERGE_MAX_BYTES:-4096}
JOBS=${FUZZ_BUILD_JOBS:-2}

HARVEST=0
MINIMIZE=0
SECONDS_EACH=60
if [ "${1:-}" = "--harvest" ]; then
  HARVEST=1
  shift
elif [ "${1:-}" = "--minimize" ]; then
  MINIMIZE=1
  shift
elif [ -n "${1:-}" ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  SECONDS_EACH=$1
  shift
fi
NAMES=("$@")
if [ ${#NAMES[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do
    n=$(basename "$f" .c)
    NAMES+=("${n#fuzz_}")
  done
fi

apt_install() {
  local SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  echo "fuzz: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "$@"
}
# clang, and libFuzzer's runtime (Debian: libclang-rt-N-dev, only recommended by clang)
command -v clang >/dev/null 2>&1 || apt_install clang
fuzzer_links() {
  echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
    clang -x c - -fsanitize=fuzzer -o "${TMPDIR:-/tmp}/gpunas-fuzz-probe.$$" >/dev/null 2>&1
  local rc=$?
  rm -f "${TMPDIR:-/tmp}/gpunas-fuzz-probe.$$"
  return $rc
}
fuzzer_links || apt_install "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"

CC=clang nice -n 10 cmake -S . -B "$B" -DGPUNAS_FUZZ=ON -DGPUNAS_TESTS=OFF -DGPUNAS_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
for n in "${NAMES[@]}"; do targets+=("fuzz_$n"); done
nice -n 10 cmake --build "$B" -j"$JOBS" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# merge_into NAME [DIR]: re-minimise the corpus of NAME together with DIR's inputs of
# at most MERGE_MAX bytes: seed-* and repro-* files always stay; of the others (the
# corpus' unnamed files and DIR's), libFuzzer's -merge=1 keeps those that add edges
# (-use_counters=0) the kept ones lack, under their old names where they had one.
merge_into() {
  local n=$1 from=${2:-} c=tests/fuzz/corpus/$1 w=$B/merge/$1
  rm -rf "$w" && mkdir -p "$w/keep" "$w/cand" "$w/out" "$c"
  find "$c" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'repro-*' \) -exec cp {} "$w/keep/" \;
  find "$c" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'repro-*' -exec cp {} "$w/cand/" \;
  if [ -n "$from" ]; then
    find "$from" -maxdepth 1 -type f -size -"$((MERGE_MAX + 1))"c -exec cp {} "$w/cand/" \;
  fi
  find "$w/keep" -type f -exec cp {} "$w/out/" \;
  local before after
  before=$(find "$c" -type f | wc -l)
  nice -n 10 "$B/fuzz_$n" -merge=1 -use_counters=0 -timeout=1 -rss_limit_mb=2048 \
    "$w/out" "$w/cand" >"$B/logs/$n.merge.log" 2>&1 || {
      echo "fuzz: $n: merge failed, see $B/logs/$n.merge.log" >&2
      return 1
    }
  find "$c" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'repro-*' -delete
  (cd "$w/cand" && sha1sum -- * 2>/dev/null) >"$w/cand.sha1" || true
  local f b name
  for f in "$w/out"/*; do
    b=$(basename "$f")
    [ -e "$w/keep/$b" ] && continue
    name=$(awk -v h="$b" '$1 == h { print $2; exit }' "$w/cand.sha1")
    cp "$f" "$c/${name:-$b}"
  done
  after=$(find "$c" -type f | wc -l)
  echo "fuzz: $n: corpus $before -> $after file(s)"
}

mkdir -p "$B/logs"

if [ $MINIMIZE = 1 ]; then
  for n in "${NAMES[@]}"; do merge_into "$n"; done
  echo "corpora: $(du -sh --apparent-size tests/fuzz/corpus | cut -f1) in $(find tests/fuzz/corpus -type f | wc -l) files"
  exit 0
fi

if [ $HARVEST = 1 ]; then
  [ -d build ] || { echo "fuzz: --harvest needs the Release build in build/ (scripts/test.sh)" >&2; exit 2; }
  H=$B/harvest
  rm -rf "$H" && mkdir -p "$H/bin" "$H/tmp" "$H/inputs"
  cc -O1 -D_GNU_SOURCE -std=gnu11 -Iinclude -Isrc -Itests/fuzz -c tests/fuzz/harvest_wrap.c -o "$H/harvest_wrap.o"
  WRAP="-Wl,--wrap=gn_arch_parse -Wl,--wrap=gn_space_parse -Wl,--wrap=gn_lat_profile_parse"
  WRAP+=" -Wl,--wrap=gn_arch_load -Wl,--wrap=gn_space_load"
  WRAP+=" -Wl,--wrap=gn_lat_profile_load -Wl,--wrap=gn_st_open -Wl,--wrap=gn_npy_read"
  WRAP+=" -Wl,--wrap=gn__image_decode -Wl,--wrap=gn__ckpt_load -Wl,--wrap=gn_net_load"
  WRAP+=" -Wl,--wrap=gn__idx_load -Wl,--wrap=gn_dataset_load_cifar10 -Wl,--wrap=gn_hub_load"
  for lt in build/CMakeFiles/test_*.dir/link.txt; do
    t=$(basename "$(dirname "$lt")" .dir)
    cmd=$(sed -e "s# -o $t # -o $ROOT/$H/bin/$t $ROOT/$H/harvest_wrap.o $WRAP #" "$lt")
    (cd build && eval "$cmd")
    echo "fuzz: harvesting from $t"
    (cd "$H/tmp" && GPUNAS_SOURCE=$ROOT GPUNAS_CLI=$ROOT/build/gpunas GPUNAS_TMP=$ROOT/$H/tmp \
      GPUNAS_HARVEST=$ROOT/$H/inputs timeout 1200 nice -n 10 "$ROOT/$H/bin/$t" >"$ROOT/$B/logs/harvest-$t.log" 2>&1) ||
      echo "fuzz: $t exited non-zero under the wrapper (see $B/logs/harvest-$t.log); its inputs are kept"
  done
  for n in "${NAMES[@]}"; do
    [ -d "$H/inputs/$n" ] || { echo "fuzz: $n: nothing harvested"; continue; }
    echo "fuzz: $n: $(find "$H/inputs/$n" -type f | wc -l) harvested input(s)"
    merge_into "$n" "$H/inputs/$n"
  done
  exit 0
fi

rows=()
failed=0
for n in "${NAMES[@]}"; do
  scratch=$B/scratch/$n art=$B/artifacts/$n log=$B/logs/$n.log
  rm -rf "$scratch" "$art" && mkdir -p "$scratch" "$art" "tests/fuzz/corpus/$n"
  dict=()
  [ -f "tests/fuzz/$n.dict" ] && dict=(-dict="tests/fuzz/$n.dict")
  echo "fuzz: $n: ${SECONDS_EACH} s"
  start=$(date +%s.%N)
  set +e
  nice -n 10 "$B/fuzz_$n" -max_total_time="$SECONDS_EACH" -timeout=1 -rss_limit_mb=2048 \
    -artifact_prefix="$art/" -print_final_stats=1 "${dict[@]}" "$scratch" "tests/fuzz/corpus/$n" >"$log" 2>&1
  rc=$?
  set -e
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#')
  [ -n "$execs" ] || execs=0
  crashes=$(find "$art" -type f | wc -l)
  if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then crashes=1; fi
  if [ "$crashes" != 0 ]; then
    failed=1
    echo "fuzz: $n: CRASH (exit $rc), see $log and $art/" >&2
    grep -m3 -E "ERROR: |runtime error|invariant broken|Timeout|out-of-memory" "$log" >&2 || true
  fi
  new=$(find "$scratch" -type f | wc -l)
  if [ "$MERGE" = 1 ]; then merge_into "$n" "$scratch" || failed=1; fi
  files=$(find "tests/fuzz/corpus/$n" -type f | wc -l)
  kb=$(du -sk --apparent-size "tests/fuzz/corpus/$n" | cut -f1)
  rate=$(awk -v e="$execs" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? e / s : 0) }')
  rows+=("$(printf '%-12s %6s %12s %8s %7s %7s %8s' "$n" "$secs" "$execs" "$rate" "$files" "$kb" "$crashes")")
done

echo
printf '%-12s %6s %12s %8s %7s %7s %8s\n' harness seconds executions exec/s corpus KB crashes
for r in "${rows[@]}"; do echo "$r"; done
echo "corpora: $(du -sh --apparent-size tests/fuzz/corpus | cut -f1) in $(find tests/fuzz/corpus -type f | wc -l) files"
exit $failed
