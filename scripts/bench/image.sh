#!/usr/bin/env bash
# Benchmark for `ecs-build image` (issue 4). No assertions: prints times and ratios from one run.
#   cold build (empty cache)           vs  mmdebstrap alone with the same package set (target <= 1.3x)
#   warm rebuild after an agent change vs  the cold build                              (target <= 0.15x)
#   mke2fs -d alone on the base tarball, for reference.
# Runs the build as the unprivileged user `ecsbuild` when started as root (scripts/deps.sh makes it).
# Needs target/release/ecs-build and ecs-agent (`make build`).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
bin="$repo/target/release/ecs-build"
agent="$repo/target/release/ecs-agent"
[ -x "$bin" ] && [ -x "$agent" ] || { echo "bench/image: run 'make build' first (needs $bin and $agent)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/ecs-bench-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  as_user=(setpriv --reuid=ecsbuild --regid=ecsbuild --init-groups --)
fi
cp "$agent" "$work/ecs-agent"
cat > "$work/machine.yml" <<YML
name: bench
disks:
  root_size: 3G
  volatile_size: 1G
outputs:
  dir: out
  raw: true
  qcow2: true
  packer: true
agent:
  binary: $work/ecs-agent
  units: $repo/agent/systemd
YML
mkdir -p "$work/home" "$work/cache"
[ "$(id -u)" -ne 0 ] || chown -R ecsbuild: "$work"

run() { # run as the build user with a clean environment
  "${as_user[@]}" env -i HOME="$work/home" XDG_CACHE_HOME="$work/cache" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    SOURCE_DATE_EPOCH=1700000000 "$@"
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

t0=$(now)
run "$bin" image --config "$work/machine.yml" --image-version bench >/dev/null
t1=$(now)
cold=$(elapsed "$t0" "$t1")

record=$(ls "$work"/cache/ecs-build/rootfs/*.json)
tarball=${record%.json}.tar
packages=$(python3 -c 'import json,sys; print(",".join(json.load(open(sys.argv[1]))["inputs"]["packages"]))' "$record")

t0=$(now)
run mmdebstrap --mode=unshare --variant=apt --format=tar --quiet --include="$packages" trixie "$work/alone.tar"
t1=$(now)
alone=$(elapsed "$t0" "$t1")

printf '\0bench agent change\0' >> "$work/ecs-agent"
t0=$(now)
run "$bin" image --config "$work/machine.yml" --image-version bench >/dev/null
t1=$(now)
warm=$(elapsed "$t0" "$t1")

truncate -s 4G "$work/mke2fs.raw"
t0=$(now)
SOURCE_DATE_EPOCH=1700000000 mke2fs -q -F -t ext4 -E offset=1048576 -d "$tarball" "$work/mke2fs.raw" 3G
t1=$(now)
mke2fs_s=$(elapsed "$t0" "$t1")

echo "image: cold build ${cold}s, mmdebstrap alone ${alone}s: ratio $(ratio "$cold" "$alone") (target <= 1.3)"
echo "image: warm rebuild after an agent change ${warm}s vs cold ${cold}s: ratio $(ratio "$warm" "$cold") (target <= 0.15)"
echo "image: mke2fs -d of the base tarball alone: ${mke2fs_s}s (reference)"
