#!/usr/bin/env bash
# First `make run`: writes a .env with a fresh random SECRET_KEY (kept, so tokens survive
# restarts). An existing .env is never touched.
set -euo pipefail
[[ -f .env ]] && exit 0
key=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=' | head -c 60)
cat > .env <<ENV
# Written by the first \`make run\`. See README.md for every setting.
DEBUG=0
SECRET_KEY=${key}
ALLOWED_HOSTS=localhost,127.0.0.1,[::1]
ENV
echo "Wrote .env with a new SECRET_KEY"
