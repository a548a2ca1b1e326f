#!/usr/bin/env bash
# Benchmark for `ecs-build disk system` (issue 3). No assertions: prints times and a ratio from one run.
#   ours:  ecs-build disk system --tree <~900 MB tarball> --root-size 10G --volatile-size 10G
#   floor: mke2fs -d of the same tarball into a plain 10G file, then cp --sparse=always into a
#          20G sparse file (what we cannot beat: one mke2fs pass plus moving the bytes once)
# The tree is made once and cached under target/bench-cache: mmdebstrap trixie with a
# server-sized package set when the Debian mirror is reachable, else a synthetic tree of the
# same size (many small files, some large ones).
# Needs target/release/ecs-build (`make build`).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
bin="${ECS_BUILD:-$repo/target/release/ecs-build}"
[ -x "$bin" ] || { echo "bench/disk: run 'make build' first (needs $bin)" >&2; exit 1; }

cache="$repo/target/bench-cache"
tree="$cache/disk-tree.tar"
mkdir -p "$cache"
if [ ! -s "$tree" ]; then
  echo "bench/disk: making the ~900 MB tree once ($tree)" >&2
  packages=systemd,systemd-sysv,linux-image-amd64,initramfs-tools,cloud-init,docker.io,docker-compose,lvm2,mdadm,duplicity,nginx,openssh-server,unattended-upgrades,python3
  if ! SOURCE_DATE_EPOCH=1700000000 mmdebstrap --variant=minbase --format=tar --quiet \
        --include="$packages" trixie "$tree.tmp" 2>"$cache/mmdebstrap.log"; then
    echo "bench/disk: mmdebstrap failed (see $cache/mmdebstrap.log); using a synthetic tree" >&2
    syn=$(mktemp -d "$cache/synthetic.XXXXXX")
    # 30000 small files (4 KiB on average) in 300 directories, and 40 files of 20 MiB.
    for d in $(seq 1 300); do
      mkdir -p "$syn/usr/share/d$d"
      for f in $(seq 1 100); do
        head -c $(( (d * 131 + f * 977) % 8192 + 1 )) /dev/urandom > "$syn/usr/share/d$d/f$f"
      done
    done
    mkdir -p "$syn/usr/lib/big"
    for f in $(seq 1 40); do head -c $((20 << 20)) /dev/urandom > "$syn/usr/lib/big/blob$f"; done
    tar -C "$syn" --numeric-owner --owner=0 --group=0 -cf "$tree.tmp" .
    rm -rf "$syn"
  fi
  mv "$tree.tmp" "$tree"
fi

work=$(mktemp -d /var/tmp/ecs-bench-disk.XXXXXX)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
used_mib() { echo $(( $(stat -c '%b * %B' "$1") / 1048576 )); }

# Warm the page cache so neither side pays for the first read of the tarball.
cat "$tree" >/dev/null
tree_mib=$(( $(stat -c %s "$tree") / 1048576 ))

t0=$(now)
SOURCE_DATE_EPOCH=1700000000 "$bin" disk system --tree "$tree" --root-size 10G --volatile-size 10G \
  -o "$work/disk.raw" >/dev/null
t1=$(now)
ours=$(elapsed "$t0" "$t1")
ours_used=$(used_mib "$work/disk.raw")
rm -f "$work/disk.raw"

t0=$(now)
mke2fs -q -F -t ext4 -b 4096 -L cloudimg-rootfs -d "$tree" "$work/root.img" 10G
cp --sparse=always "$work/root.img" "$work/floor.raw"
truncate -s 20G "$work/floor.raw"
t1=$(now)
floor=$(elapsed "$t0" "$t1")
floor_used=$(used_mib "$work/floor.raw")

echo "disk-system: tree ${tree_mib} MiB tar; ours uses ${ours_used} MiB of 20G on disk, floor ${floor_used} MiB"
echo "disk-system: ours ${ours} s, floor ${floor} s, ratio X/Y = $(ratio "$ours" "$floor") (target <= 1.5)"
