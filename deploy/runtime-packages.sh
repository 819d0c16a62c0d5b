#!/usr/bin/env bash
# The Debian packages a built chatd needs at run time: those owning the shared libraries it
# links (from ldd and dpkg), one per line. The Docker image's runtime stage installs
# exactly these, so it never drifts from what the build linked.
#   deploy/runtime-packages.sh PATH/TO/chatd
set -euo pipefail
binary=${1:?path to chatd}
mapfile -t libs < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
# usrmerge: a library found under /lib may be registered under /usr/lib, or the other way,
# so each is looked up under every spelling, in one dpkg query.
candidates=()
for lib in "${libs[@]}"; do
  real=$(readlink -f "$lib")
  candidates+=("$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}")
done
owners=$(dpkg-query -S "${candidates[@]}" 2>/dev/null || true)
status=0
packages=()
for lib in "${libs[@]}"; do
  real=$(readlink -f "$lib")
  found=""
  for p in "$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}"; do
    found=$(awk -v p="$p" '{ i = index($0, ": "); if (substr($0, i + 2) == p) { print substr($0, 1, i - 1); exit } }' <<<"$owners")
    [[ -n "$found" ]] && break
  done
  if [[ -z "$found" ]]; then
    echo "runtime-packages: no package owns $lib" >&2
    status=1
    continue
  fi
  packages+=("${found%%:*}")  # without the architecture
done
printf '%s\n' "${packages[@]}" | sort -u
exit "$status"
