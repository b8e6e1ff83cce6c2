#!/usr/bin/env bash
# Issue 13's benchmark table in one command (by hand, never in CI): nginx vs
# imagestore download, cached derivative, listing, uploads, upload p50 as the
# album grows. Builds this worktree (unless --no-build), checks the tools, then
# runs bench/compare.ts with the remaining arguments. The Markdown section goes
# to stdout (append it to bench/RESULTS.md by hand), progress to stderr.
#
#   bash bench/compare.sh [--no-build] [--rounds 3] [--seconds 10] [--label LABEL]
#        [--variant LABEL=path/to/dist/src/main.js ...] [--before LABEL]
#        [--rows download,derivative,list,upload,flat] [--list-size 1000]
#        [--flat-sizes 1000,20000] [--flat-count 150] [--flat-connections 16]
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
passed=()
for arg in "$@"; do
  if [[ "$arg" == --no-build ]]; then build=0; else passed+=("$arg"); fi
done

missing=()
[[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
[[ -x /usr/bin/wrk ]] || missing+=(wrk)
if (( ${#missing[@]} > 0 )); then
  echo "missing: ${missing[*]} (Debian: apt-get install -y ${missing[*]})" >&2
  exit 1
fi
[[ -d node_modules ]] || { echo "run npm ci first" >&2; exit 1; }

if (( build )); then
  echo "npm run build" >&2
  npm run build >&2
fi
exec npx tsx bench/compare.ts "${passed[@]}"
