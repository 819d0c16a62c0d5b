#!/usr/bin/env bash
# Builds chatd for release and installs it under PREFIX: PREFIX/bin/chatd, and the web pages
# and Swagger UI in PREFIX/share/chatd/ where `chatd serve` finds them. The Docker image's
# build stage runs it; `make test` runs it too (on its own build folder, so only the install
# step is new work) and checks what it installed.
#   deploy/build.sh BUILD_DIR PREFIX
set -euo pipefail
build_dir=${1:?build folder}
prefix=${2:?install prefix}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Swagger UI comes from npm (package-lock.json); nothing is fetched when it is there.
scripts/install-web.sh run
if [[ ! -f "$build_dir/build.ninja" ]]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCHATD_TESTS=OFF -DCHATD_BENCH=OFF
fi
cmake --build "$build_dir" -j "$(nproc)" --target chatd
cmake --install "$build_dir" --prefix "$prefix" --strip >/dev/null
echo "installed $("$prefix/bin/chatd" --version 2>/dev/null || echo chatd) in $prefix"
