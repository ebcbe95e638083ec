#!/usr/bin/env bash
# fuzz/run.sh [seconds_per_target] — builds the libFuzzer targets (build/fuzz) if needed,
# then fuzzes each one for the given seconds (default 60) and prints its executions and
# coverage. Exits non-zero if any target found a crash, a sanitizer report or a broken
# invariant, printing the reproducer and the command that replays it.
#
# Each target starts from a copy of its seed corpus (fuzz/corpus/<target>/) in
# build/fuzz/corpus-work/<target>/, where libFuzzer also keeps what it finds, so longer
# runs build on earlier ones and the committed corpus never grows. FUZZ_FRESH=1 starts
# from the seed corpus alone; FUZZ_WORK=<dir> keeps the working corpora elsewhere (`make test`
# runs fresh in build/fuzz/corpus-smoke, so its time does not grow with the corpus of
# `make fuzz`). Installs nothing: needs clang, libFuzzer (libclang-rt-14-dev on
# Debian 12), CMake, Abseil and SQLite (see the Makefile's bootstrap).
#
# Before fuzzing a target, the reproducers of bugs it found earlier
# (fuzz/regressions/<target>/) are replayed; each must pass.
#
# Environment: FUZZ_JOBS (build jobs, default 2), FUZZ_TARGETS (default: all five),
# FUZZ_FRESH=1; BOXOFFICE_FUZZ_TRACE=1 makes command_sequence_fuzzer print every step
# (to read a reproducer).
set -uo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: fuzz/run.sh [seconds_per_target]" >&2
  exit 2
fi
build=build/fuzz
work_root="${FUZZ_WORK:-$build/corpus-work}"
targets="${FUZZ_TARGETS:-journal_record_fuzzer command_sequence_fuzzer snapshot_fuzzer result_fuzzer queue_digest_fuzzer}"

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++ >/dev/null || exit 1
fi
# Quietly on success; on failure again, showing the errors.
cmake --build "$build" -j "${FUZZ_JOBS:-2}" >/dev/null 2>&1 || {
  cmake --build "$build" -j 1
  exit 1
}

mkdir -p "$build/logs"
# Sanitizer reports abort (libFuzzer saves the input); symbolized stack traces.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Without Debian's `llvm` package there is no llvm-symbolizer on PATH; clang's own will do.
if ! command -v llvm-symbolizer >/dev/null && [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
  for s in /usr/lib/llvm-*/bin/llvm-symbolizer; do
    [ -x "$s" ] && export ASAN_SYMBOLIZER_PATH="$s"
  done
fi

status=0
printf '%-26s %12s %8s %8s %8s %s\n' target executions exec/s cov ft corpus
for target in $targets; do
  work="$work_root/$target"
  artifacts="$build/artifacts/$target"
  log="$build/logs/$target.log"
  [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$work"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  cp -p fuzz/corpus/"$target"/* "$work"/
  dict=()
  [ -f "fuzz/$target.dict" ] && dict=("-dict=fuzz/$target.dict")

  # The reproducers of earlier bugs first (fuzz/regressions/README.md): each must pass.
  regressions=()
  if [ -d "fuzz/regressions/$target" ]; then
    regressions=(fuzz/regressions/"$target"/*)
  fi
  if [ ${#regressions[@]} -gt 0 ] &&
    ! "$build/$target" "${regressions[@]}" >"$build/logs/$target.regressions.log" 2>&1; then
    status=1
    echo "FAILED: a reproducer in fuzz/regressions/$target fails again;" \
      "log: $build/logs/$target.regressions.log" >&2
    grep -E '^Running:|check failed|runtime error|ERROR: AddressSanitizer' \
      "$build/logs/$target.regressions.log" | tail -3 >&2
  fi

  "$build/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" "$work" >"$log" 2>&1
  rc=$?

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # The last status line: "#N  DONE   cov: X ft: Y corp: Z/S ..."
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
  printf '%-26s %12s %8s %8s %8s %s\n' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "${corp:-?}"

  if [ "$rc" -ne 0 ]; then
    status=1
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "FAILED: $target exited with $rc; log: $log" >&2
    grep -E 'check failed|ERROR: AddressSanitizer|runtime error|ERROR: libFuzzer|SUMMARY' "$log" \
      | head -5 >&2
    if [ -n "$crash" ]; then
      echo "reproducer: $crash" >&2
      echo "replay it:  $build/$target $crash" >&2
    fi
  fi
done
exit "$status"
