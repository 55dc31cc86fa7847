#!/usr/bin/env bash
# The one command that installs what the tests need and runs every test (README "Test").
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
bash tools/scripts/install-system-deps.sh
npm ci --no-audit --no-fund
log=$(mktemp)
trap 'rm -f "$log"' EXIT
npx nx run-many -t build typecheck lint test e2e --output-style=stream 2>&1 | tee "$log"
# One plain closing line with the totals of every Vitest run above (Nx prefixes and colours stripped).
sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
  /Tests +[0-9]+/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) passed += $i
      if ($(i+1) ~ /^failed/) failed += $i
      if ($(i+1) ~ /^skipped/) skipped += $i
    }
  }
  END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped }'
