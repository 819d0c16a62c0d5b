#!/usr/bin/env bash
# Installs what the web side needs: the npm packages pinned in package-lock.json (Swagger UI,
# playwright-core, Redocly CLI) and, for `test`, Debian's chromium for the browser tests.
# Idempotent: a second run costs a timestamp comparison and one dpkg query.
# Usage: install-web.sh run|test
# No browser is ever downloaded through npm: playwright-core drives /usr/bin/chromium, and
# package install scripts (Swagger UI's telemetry one) are not run.
set -euo pipefail
cd "$(dirname "$0")/.."

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 SCARF_ANALYTICS=false
mode=${1:-run}
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"

apt_install() {
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Node.js and npm: the machine's own when it has them, else Debian's.
if ! command -v npm >/dev/null 2>&1; then
  echo "Installing nodejs and npm"
  apt_install nodejs npm
fi

if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  echo "Installing npm packages from package-lock.json"
  npm ci --ignore-scripts --no-audit --no-fund
  touch node_modules  # newer than the lock now, so the next run skips this
fi

[[ "$mode" == "test" ]] || exit 0
status=$(dpkg-query -W -f='${db:Status-Status}' chromium 2>/dev/null || true)
if [[ "$status" != "installed" ]]; then
  echo "Installing chromium"
  apt_install chromium
fi
