#!/usr/bin/env bash
# Benchmark: `ecs-agent recover --from backup` (fetch while the app serves, stop, move aside,
# fresh database, pg_restore, migrate, app healthy) of a fixture appliance with a few MB of rows
# and vault files, against the baseline measured in the same run: duplicity's restore of the
# same backup plus pg_restore of its dump, by hand (target: recover <= 1.2x baseline). Runs the
# ignored test bench_recover (private dockerd, fixture images, nginx; needs root). Prints;
# asserts nothing about the times.
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test -q -p ecs-agent --test recover_command -- --ignored --exact bench_recover --nocapture >"$log" 2>&1 \
  || { tail -40 "$log"; exit 1; }
line=$(grep -m1 '^bench: recover=' "$log") || { echo "recover: no bench line"; tail -20 "$log"; exit 1; }
echo "recover: ${line#bench: }"
r=$(sed -E 's/.*recover=([0-9.]+).*/\1/' <<<"$line")
b=$(sed -E 's/.*baseline=([0-9.]+).*/\1/' <<<"$line")
d=$(sed -E 's/.*downtime=([0-9.]+).*/\1/' <<<"$line")
awk -v r="$r" -v b="$b" -v d="$d" 'BEGIN { printf "recover: %.1fs (downtime %.1fs), duplicity restore + pg_restore alone %.1fs, ratio %.2f (target <= 1.2)\n", r, d, b, (b > 0 ? r / b : 0) }'
