#!/usr/bin/env bash
# Runs each libFuzzer target for a while, one after the other, on a copy of its seed corpus
# (new inputs go to a temporary folder, never into fuzz/corpus), then prints a table and
# writes BUILD_DIR/results.json. A crash, leak, timeout or out-of-memory input is copied to
# fuzz/crashes/<target>/ (which `make test` replays) and makes the run fail.
#   fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
build_dir=$(cd "${1:?build folder}" && pwd)
seconds=${2:-60}
shift $(($# < 2 ? $# : 2))
root=$(cd "$(dirname "$0")/.." && pwd)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(http_request ws_event jwt_decode search_query config_parse)

# Longest input per target: a request or a few frames, a token, a typed query, a .env file.
max_len() {
  case "$1" in
    http_request | ws_event) echo 4096 ;;
    jwt_decode | config_parse) echo 2048 ;;
    search_query) echo 512 ;;
    *) echo 4096 ;;
  esac
}

work=$(mktemp -d /tmp/chatd-fuzz-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
rows=()
json_rows=()
for t in "${targets[@]}"; do
  bin="$build_dir/fuzz/fuzz_$t"
  [[ -x "$bin" ]] || { echo "missing $bin (build the fuzz_all target first)" >&2; exit 2; }
  dir="$work/$t"
  mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
  cp "$root/fuzz/corpus/$t/"* "$dir/corpus/"
  seeds=$(find "$dir/corpus" -type f | wc -l)
  dict=()
  [[ -f "$root/fuzz/dict/$t.dict" ]] && dict=(-dict="$root/fuzz/dict/$t.dict")
  echo "== $t: ${seconds}s, $seeds seeds, -max_len=$(max_len "$t")"
  rc=0
  # TMPDIR: the SQLite store of the targets that need one goes with the run.
  TMPDIR="$dir/tmp" "$bin" "$dir/corpus" "${dict[@]}" -max_total_time="$seconds" \
    -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/" >"$dir/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  per_sec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$dir/log" | tail -1)
  # Without final stats (a crash can end the process first): the last status line.
  if [[ -z "$execs" ]]; then
    execs=$(grep -o '^#[0-9]*' "$dir/log" | tail -1 | tr -d '#')
    per_sec=$(grep -o 'exec/s: [0-9]*' "$dir/log" | tail -1 | grep -o '[0-9]*$')
  fi
  execs=${execs:-0}
  per_sec=${per_sec:-0}
  rss=${rss:-0}
  corpus_after=$(find "$dir/corpus" -type f | wc -l)
  findings=0
  for f in "$dir/artifacts"/*; do
    [[ -e "$f" ]] || continue
    findings=$((findings + 1))
    mkdir -p "$root/fuzz/crashes/$t"
    cp "$f" "$root/fuzz/crashes/$t/"
    echo "   finding: fuzz/crashes/$t/$(basename "$f")"
  done
  if [[ $rc -ne 0 && $findings -eq 0 ]]; then
    findings=1  # the fuzzer failed without saving an input: still a finding
  fi
  if [[ $findings -gt 0 ]]; then
    status=1
    echo "   libFuzzer exited with $rc; its log:"
    grep -v '^#[0-9]' "$dir/log" | tail -60 | sed 's/^/   | /'
  fi
  rows+=("$(printf '%-14s %14s %10s %8s %8s %8s' "$t" "$execs" "$per_sec" "$corpus_after" "$rss" \
    "$findings")")
  json_rows+=("$(printf '    {"target": "%s", "seconds": %s, "executions": %s, "exec_per_second": %s, "seeds": %s, "corpus_after": %s, "peak_rss_mb": %s, "findings": %s}' \
    "$t" "$seconds" "$execs" "$per_sec" "$seeds" "$corpus_after" "$rss" "$findings")")
done

echo
printf '%-14s %14s %10s %8s %8s %8s\n' target executions exec/s corpus rss_mb findings
printf '%s\n' "${rows[@]}"

{
  echo '{'
  echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"compiler\": \"$(clang++ --version | head -1)\","
  echo '  "sanitizers": "address,undefined",'
  echo "  \"seconds_per_target\": $seconds,"
  echo '  "targets": ['
  for i in "${!json_rows[@]}"; do
    sep=","
    [[ $i -eq $((${#json_rows[@]} - 1)) ]] && sep=""
    echo "${json_rows[$i]}$sep"
  done
  echo '  ]'
  echo '}'
} >"$build_dir/results.json"
echo "figures in $build_dir/results.json"
exit $status
