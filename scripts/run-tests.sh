#!/usr/bin/env bash
# Runs every test: the unit tests (ctest) and the integration tests (pytest, against a
# real chatd), with PostgreSQL and Redis started for them and stopped afterwards.
set -euo pipefail
build_dir=${1:?build folder}
root=$(cd "$(dirname "$0")/.." && pwd)
services=$(mktemp -d /tmp/chatd-services.XXXXXX)
trap '"$root/scripts/test-services.sh" stop "$services"' EXIT
"$root/scripts/test-services.sh" start "$services"
# shellcheck source=/dev/null
source "$services/services.env"
(cd "$build_dir" && ctest --output-on-failure -j "$(nproc)")
CHATD_BIN="$(cd "$build_dir" && pwd)/chatd" /usr/bin/python3 -m pytest -q "$root/tests/integration"
