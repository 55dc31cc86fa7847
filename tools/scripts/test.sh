#!/usr/bin/env bash
# The one command that installs what the tests need and runs every test (README "Test").
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
bash tools/scripts/install-system-deps.sh
npm ci --no-audit --no-fund
npx nx run-many -t build typecheck lint test e2e --output-style=stream
