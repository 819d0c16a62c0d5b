#!/usr/bin/env bash
# Runs every test: the unit tests (ctest) once, then the integration tests (pytest, against
# a real chatd) once per storage configuration, with the same test code:
#   CHATD_TEST_BACKEND=sqlite    an SQLite file and the in-process broker (one node)
#   CHATD_TEST_BACKEND=postgres  PostgreSQL and Redis; also the multi-node and nginx tests
# PostgreSQL and Redis are started for them on loopback and stopped afterwards. Every pass
# runs even when an earlier one failed; the exit status is non-zero if any step failed.
#   run-tests.sh BUILD_DIR [PYTEST_ARGS...]
#   CHATD_TEST_BACKENDS=postgres run-tests.sh build/release -k multinode   (one pass only)
set -euo pipefail
build_dir=${1:?build folder}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
services=$(mktemp -d /tmp/chatd-services.XXXXXX)
trap '"$root/scripts/test-services.sh" stop "$services"' EXIT
"$root/scripts/test-services.sh" start "$services"
# shellcheck source=/dev/null
source "$services/services.env"
(cd "$build_dir" && ctest --output-on-failure -j "$(nproc)")
# The API documents with a real OpenAPI/AsyncAPI linter.
"$root/tests/lint_openapi.sh"
export CHATD_BIN
CHATD_BIN="$(cd "$build_dir" && pwd)/chatd"
status=0
for backend in ${CHATD_TEST_BACKENDS:-sqlite postgres}; do
  echo "== integration tests: $backend"
  CHATD_TEST_BACKEND=$backend /usr/bin/python3 -m pytest -q -p no:cacheprovider "$root/tests/integration" "$@" \
    || status=1
done
exit $status
