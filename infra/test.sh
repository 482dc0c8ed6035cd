#!/usr/bin/env bash
# Runs every test of the solution in two steps: (1) installs and starts Azurite (the Azure Storage emulator the cluster
# tests use), runs `dotnet test` on everything but the chaos suite, stops Azurite, and prints "tests: N passed, N failed,
# N skipped"; (2) the chaos suite (infra/chaos.sh: silo processes killed, stopped and starved of storage on an Azurite of
# its own), which reuses step 1's build. Arguments go to step 1's `dotnet test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dotnet >/dev/null 2>&1; then
  echo "test.sh: the .NET 10 SDK (dotnet) is not on PATH; install it first" >&2
  exit 1
fi

bash infra/azurite.sh install
bash infra/azurite.sh start
trap 'bash infra/azurite.sh stop || true' EXIT

log=$(mktemp)
set +e
# The chaos suite (Category=Chaos) is a step of its own: infra/chaos.sh.
dotnet test RAE.sln -c Release --filter "Category!=Chaos" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# Sum the per-assembly summaries ("Passed!  - Failed: 0, Passed: 12, Skipped: 0, Total: 12, ...").
read -r passed failed skipped < <(grep -E '^(Passed|Failed)!' "$log" | awk -F'[:,]' '
  { for (i = 1; i <= NF; i++) { if ($i ~ /Failed$/) f += $(i+1); if ($i ~ /Passed$/) p += $(i+1); if ($i ~ /Skipped$/) s += $(i+1) } }
  END { printf "%d %d %d\n", p, f, s }')
rm -f "$log"
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$status" -ne 0 ]; then
  echo "test.sh: dotnet test failed (exit $status)" >&2
  exit "$status"
fi
if [ "$passed" -eq 0 ]; then
  echo "test.sh: no test ran" >&2
  exit 1
fi

# Step 2 (after step 1's Azurite is stopped: the suite runs its own).
bash infra/azurite.sh stop || true
trap - EXIT
bash infra/chaos.sh
