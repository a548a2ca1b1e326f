#!/usr/bin/env bash
# Benchmark: making a NoCloud seed ISO from the same user-data and meta-data with our writer
# and with cloud-localds (genisoimage), each run RUNS times (default 50), wall time per run.
# Ours is `ecs-build config seed` from the release build when that command works, else the
# cloud-init crate's `mkseed` example (built here). Prints one ratio line; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-50}
target=${CARGO_TARGET_DIR:-target}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf 'instance-id: "iid-bench.example.org"\nlocal-hostname: "bench.example.org"\n' >"$tmp/meta-data"

bin=$target/release/ecs-build
if [ -x "$bin" ] &&
  "$bin" config new --domain bench.example.org --out "$tmp/cfg" >/dev/null 2>&1 &&
  "$bin" config seed "$tmp/cfg/env.yml" -o "$tmp/probe.iso" >/dev/null 2>&1; then
  user_data=$tmp/cfg/env.yml
  ours_name="ecs-build config seed"
  ours=("$bin" config seed "$user_data" -o "$tmp/ours.iso")
else
  cargo build --release --quiet -p cloud-init --example mkseed
  # A stand-in of env.yml's size (keys and certificates make it some tens of KiB).
  user_data=$tmp/user-data
  {
    echo '#cloud-config'
    for i in $(seq 1 600); do echo "key_$i: \"value number $i of the benchmark user-data\""; done
  } >"$user_data"
  ours_name="cloud-init example mkseed (ecs-build config seed not available)"
  ours=("$target/release/examples/mkseed" "$tmp/ours.iso" "$user_data" "$tmp/meta-data")
fi
theirs=(cloud-localds "$tmp/theirs.iso" "$user_data" "$tmp/meta-data")

# Mean wall time per run in microseconds. One checked run first, so a failure is not timed.
time_us() {
  "$@" >/dev/null
  local start end i
  start=$(date +%s%N)
  for ((i = 0; i < RUNS; i++)); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo $(((end - start) / RUNS / 1000))
}

ours_us=$(time_us "${ours[@]}")
theirs_us=$(time_us "${theirs[@]}")
echo "seed-iso: $RUNS runs each of $ours_name and cloud-localds on $(wc -c <"$user_data") bytes of user-data"
awk -v o="$ours_us" -v t="$theirs_us" \
  'BEGIN { printf "seed-iso: ours %.2f ms, cloud-localds %.2f ms, ratio X/Y = %.2f\n", o / 1000, t / 1000, o / t }'
