#!/usr/bin/env bash
# Benchmark: `ecs-agent start` from agent start to app healthy, with a per-step breakdown from
# status.json, for a fresh start on blank storage and for a restart with existing data (the
# baseline, measured in the same run). Runs the agent's start test (private dockerd, fixture
# images, nginx; needs root). Prints; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test -q -p ecs-agent --test start -- --nocapture >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
mapfile -t runs < <(grep '^bench: ' "$log")
if [ "${#runs[@]}" -lt 2 ]; then
  echo "agent: expected two bench lines (fresh, restart), got ${#runs[@]}"
  exit 1
fi
fresh=${runs[0]#bench: * }
restart=${runs[1]#bench: * }
echo "agent start, fresh (new database):    $fresh"
echo "agent start, restart (data kept):     $restart"
f=$(sed -E 's/^total=([0-9.]+).*/\1/' <<<"$fresh")
r=$(sed -E 's/^total=([0-9.]+).*/\1/' <<<"$restart")
awk -v f="$f" -v r="$r" 'BEGIN { printf "agent: fresh start %.1fs, restart %.1fs, ratio fresh/restart %.2f\n", f, r, (r > 0 ? f / r : 0) }'
