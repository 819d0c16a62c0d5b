#!/usr/bin/env bash
# Lints api/openapi.json and api/asyncapi.json with Redocly CLI, by the rules of redocly.yaml
# (repository root).
# The CLI comes from the npm dev dependencies (`npm ci`); without it the lint is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x node_modules/.bin/redocly ]]; then
  echo "lint_openapi: node_modules/.bin/redocly is missing: run scripts/install-web.sh" >&2
  exit 1
fi
exec npx --no-install @redocly/cli lint --config redocly.yaml api/openapi.json api/asyncapi.json
