#!/usr/bin/env bash
# Builds the studio (ui/ -> ui/dist, which cairn-server serves) with npm, when its sources changed.
set -euo pipefail
cd "$(dirname "$0")/../ui"
if [[ ! -d node_modules/vite ]]; then
  npm install --no-audit --no-fund --silent >&2
fi
if [[ ! -f dist/index.html ]] ||
   [[ -n $(find src index.html package.json vite.config.ts tsconfig.json -newer dist/index.html -print -quit) ]]; then
  npx tsc --noEmit -p .
  npx vite build --logLevel warn
fi
