#!/usr/bin/env bash
# Installs the Debian packages that building and testing ecs-build need. Idempotent:
# packages already present are skipped, and apt runs only when something is missing.
# Run as root (CI) or through sudo.
set -euo pipefail

# Everything the builder, the tests and the benchmarks call. Grouped by who needs it.
packages=(
  # image pipeline: rootless tree, filesystems, partition tools, boot loader
  mmdebstrap uidmap e2fsprogs fdisk gdisk dosfstools mtools grub-pc-bin grub-efi-amd64-bin grub-common
  # disk formats checked with the reference tools
  lvm2 mdadm util-linux xorriso genisoimage cloud-image-utils
  # key material and cloud-init checks
  openssl gnupg gnupg1 openssh-client cloud-init python3-yaml libarchive13
  # paper backup
  poppler-utils
  # boot tests and image conversion
  ovmf busybox-static xz-utils
  # appliance components driven by tests
  docker.io duplicity pebble packer vagrant
  # ecs-agent tests: compose v1 (bookworm has no v2), nginx as the TLS frontend and service page
  docker-compose nginx-light
  # hardening: the firewall (nft, network namespaces, ping), the sshd drop-in (sshd -T)
  nftables iproute2 iputils-ping openssh-server
  # the appliance's mail (ecs-agent tests): the relay and its DKIM milter; a test SMTP server,
  # DKIM verification and an SMTP client to test them with
  postfix opendkim opendkim-tools python3-aiosmtpd python3-dkim
  # build helpers
  pkg-config build-essential curl ca-certificates
)
# From bookworm-backports on Debian 12: qemu-system-x86 must match the qemu-utils 10.x these
# machines carry, and e2fsprogs >= 1.47.1 fills ext4 from a tarball (`mke2fs -d x.tar`, through
# libarchive) with the archive's ownership: that is what makes rootless builds exact.
backports_packages=(qemu-system-x86 qemu-utils e2fsprogs)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# --- ecs-build: unprivileged build user (image tests build as this user; issue 4) ---
# A plain user with /etc/subuid and /etc/subgid ranges, so `mmdebstrap --mode=unshare` runs
# rootless. Idempotent: the user and the ranges are only added when missing.
ensure_build_user() {
  local u=ecsbuild
  id -u "$u" >/dev/null 2>&1 || $SUDO useradd --system --create-home --home-dir /var/lib/ecsbuild --shell /usr/sbin/nologin "$u"
  for f in /etc/subuid /etc/subgid; do
    [ -f "$f" ] || $SUDO touch "$f"
    grep -q "^$u:" "$f" || echo "$u:3000000000:65536" | $SUDO tee -a "$f" >/dev/null
  done
}
ensure_build_user
# --- end ecs-build build user ---

. /etc/os-release
installed() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | grep -q "install ok installed"; }
from_backports() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null | grep -q "bpo"; }
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${backports_packages[@]}"; do
  if [ "${VERSION_CODENAME:-}" = "bookworm" ]; then from_backports "$p" || missing+=("$p"); else installed "$p" || missing+=("$p"); fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} + ${#backports_packages[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"

if [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
  # Derive a backports entry from the machine's own Debian source; no mirror host is named here.
  bp=/etc/apt/sources.list.d/ecs-build-backports.sources
  if [ ! -f "$bp" ]; then
    uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | awk '{print $2}' | head -n1 || true)
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
      uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { echo "deps: cannot find a Debian source to derive bookworm-backports from" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" | $SUDO tee "$bp" >/dev/null
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# postfix unconfigured: the tests run their own instances (postfix -c DIR); the package's own
# would otherwise be set up as an Internet site and, where systemd runs, take port 25.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"
if [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
  $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${backports_packages[@]}"
else
  $SUDO apt-get install -y -q --no-install-recommends "${backports_packages[@]}"
fi
echo "deps: done"
