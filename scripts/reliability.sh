#!/usr/bin/env bash
# `make reliability`: runs the sturdiness tests (crash durability, graceful shutdown, the
# bad-input table, the attacks) on SQLite and on PostgreSQL+Redis, replays the fuzzing
# corpus, and prints one table of what they measured; the same table goes to
# reliability/report.md, which the README links.
#   reliability.sh BUILD_DIR
set -euo pipefail
build_dir=${1:?build folder}
root=$(cd "$(dirname "$0")/.." && pwd)
figures=$(mktemp -d /tmp/chatd-figures.XXXXXX)
services=$(mktemp -d /tmp/chatd-services.XXXXXX)
trap '"$root/scripts/test-services.sh" stop "$services"; rm -rf "$figures"' EXIT
"$root/scripts/test-services.sh" start "$services"
# shellcheck source=/dev/null
source "$services/services.env"
export CHATD_BIN CHATD_RELIABILITY_DIR=$figures
CHATD_BIN="$(cd "$build_dir" && pwd)/chatd"
status=0
(cd "$build_dir" && ctest --output-on-failure -R fuzz) || status=1
tests=()
for t in test_durability test_bad_input test_attacks; do
  [ -f "$root/tests/integration/$t.py" ] && tests+=("$root/tests/integration/$t.py")
done
for backend in sqlite postgres; do
  echo "== sturdiness tests: $backend"
  CHATD_TEST_BACKEND=$backend /usr/bin/python3 -m pytest -q -p no:cacheprovider "${tests[@]}" \
    || status=1
done
echo
mkdir -p "$root/reliability"
"$root/scripts/reliability-report.py" "$figures" --fuzz "$root/build/fuzz/results.json" \
  --markdown "$root/reliability/report.md" || status=1
exit $status
