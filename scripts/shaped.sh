#!/usr/bin/env bash
# Runs the browser test behind a shaped link (network namespace + HTB rate
# limit; needs root, ip, tc and chromium) several times and prints its
# timings: see docs/benchmarks.md. Usage: scripts/shaped.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
for i in $(seq 1 "$runs"); do
	echo "== run $i"
	CHORUS_E2E=1 CHORUS_SHAPED=1 go test -count=1 -run TestBrowserRateLimitedSimulcast -v ./e2e 2>&1 |
		grep -E 'downgrade:|hold on|return:|^--- |left the lowest|does not decode' || true
done
