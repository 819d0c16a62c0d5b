#!/usr/bin/env bash
# Installs the Debian 12 packages chatd needs, and only those that are missing, so a
# second run costs one dpkg query. Usage: install-deps.sh run|test|fuzz
set -euo pipefail

build_packages=(
  g++ cmake ninja-build pkg-config ccache
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libpq-dev libhiredis-dev libsodium-dev libssl-dev libjwt-dev libjemalloc-dev
  libspdlog-dev libcli11-dev libicu-dev
)
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-pytest python3-requests python3-websockets python3-jsonschema python3-yaml
  sqlite3 postgresql redis-server nginx
)

# `make fuzz`: clang with libFuzzer and the sanitizer runtimes.
fuzz_packages=(
  clang libclang-rt-14-dev
)

packages=("${build_packages[@]}")
if [[ "${1:-run}" == "test" ]]; then
  packages+=("${test_packages[@]}")
elif [[ "${1:-run}" == "fuzz" ]]; then
  packages+=("${fuzz_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "Installing: ${missing[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Services are started by the tests themselves, on loopback ports of their own.
$SUDO env RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
