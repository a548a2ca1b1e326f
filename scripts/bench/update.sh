#!/usr/bin/env bash
# Benchmark: `ecs-agent update-ecs` v1 → v4 of the fixture app on the host (storage:
# directories, so the PRE_MIGRATE snapshot is a copy of the data directory): the downtime (app
# stopped to app healthy) against the migration alone (v4's migrate hook run by itself, the
# baseline, measured in the same run). Target: downtime ≤ migration + 10 s. Runs the agent's
# update test (private dockerd, fixture images, nginx; needs root). Prints; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test -q -p ecs-agent --test update failed_updates_roll_back -- --nocapture >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
line=$(grep -m1 '^bench: update ' "$log" || true)
if [ -z "$line" ]; then
  echo "update: no bench line in the test's output"
  exit 1
fi
d=$(sed -E 's/.*downtime=([0-9.]+).*/\1/' <<<"$line")
m=$(sed -E 's/.*migration=([0-9.]+).*/\1/' <<<"$line")
awk -v d="$d" -v m="$m" 'BEGIN {
  printf "update-ecs v1->v4: downtime %.1fs, migration alone %.1fs, ratio downtime/migration %.2f, over migration %+.1fs (target <= +10s: %s)\n",
    d, m, (m > 0 ? d / m : 0), d - m, (d - m <= 10 ? "met" : "missed")
}'
