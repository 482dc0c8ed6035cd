#!/usr/bin/env bash
# The chaos suite (tests/RAE.Cluster.Tests/Chaos), run apart from the main tests: 3 (or 4) silo processes under Azure Table
# membership on an Azurite of its own (free ports, so freezing it never touches the shared one), a fixed seed, and
# ROUNDS rounds of kill -9 / graceful stop of a random silo / Azurite frozen for a few seconds, while training, encode
# and sampling jobs run; then every job must have completed with the bits of an undisturbed run. The counts (kills,
# stops, storage pauses, restores, retries) are printed at the end.
#   infra/chaos.sh [ROUNDS] [SEED] [SILOS]   defaults 20, 13 and 3 (RAE_CHAOS_ROUNDS / RAE_CHAOS_SEED / RAE_CHAOS_SILOS,
#   3 or 4); `infra/chaos.sh 4` is the quick variant
# Expects a Release build (dotnet build RAE.sln -c Release) unless CHAOS_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."

export RAE_CHAOS_ROUNDS="${1:-${RAE_CHAOS_ROUNDS:-20}}"
export RAE_CHAOS_SEED="${2:-${RAE_CHAOS_SEED:-13}}"
export RAE_CHAOS_SILOS="${3:-${RAE_CHAOS_SILOS:-3}}"
bash infra/azurite.sh install

build=(--no-build)
[ "${CHAOS_BUILD:-0}" = "1" ] && build=()
echo "chaos.sh: ${RAE_CHAOS_ROUNDS} rounds, seed ${RAE_CHAOS_SEED}, ${RAE_CHAOS_SILOS} silos"
exec dotnet test tests/RAE.Cluster.Tests -c Release "${build[@]}" --filter "Category=Chaos" \
  --logger "console;verbosity=detailed"
