#!/usr/bin/env bash
# Whether the tree is formatted: every C++ file as .clang-format says (clang-format 14), the studio and the
# browser tests as ui/.prettierrc.json says (Prettier, from ui/node_modules). Lists the files that differ
# and exits 1; `scripts/check-format.sh --fix` formats them instead. CI runs it first (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0
[[ "${1:-}" == "--fix" ]] && fix=1
mapfile -t cxx < <(git ls-files '*.cc' '*.h')
web=(ui/src ui/index.html tests/browser/cross_site.mjs tests/browser/studio.mjs)
if [[ ! -x ui/node_modules/.bin/prettier ]]; then
  (cd ui && npm install --no-audit --no-fund --silent >&2)
fi
prettier=(ui/node_modules/.bin/prettier --config ui/.prettierrc.json)
if ((fix)); then
  clang-format-14 -i "${cxx[@]}"
  "${prettier[@]}" --log-level warn --write "${web[@]}"
  exit 0
fi
bad=0
for f in "${cxx[@]}"; do
  if ! clang-format-14 --dry-run -Werror "$f" > /dev/null 2>&1; then
    echo "not formatted: $f (scripts/check-format.sh --fix)"
    bad=1
  fi
done
if ! "${prettier[@]}" --log-level warn --check "${web[@]}"; then
  echo "not formatted: the files above (scripts/check-format.sh --fix)"
  bad=1
fi
((bad == 0)) && echo "check-format: ${#cxx[@]} C++ files and the studio are formatted"
exit "$bad"
