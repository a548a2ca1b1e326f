#!/usr/bin/env bash
# Benchmark: wall time of `ecs-build config new` (release build: env.yml with all key material,
# seed ISO and paper backup) against the original appliance's way of making its key material
# with the command-line tools (3x `openssl rand`, `openssl genrsa 2048`, three RSA-2048 GnuPG
# keys without passphrase), measured in the same run. Prints one ratio line; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-5}
bin=${CARGO_TARGET_DIR:-target}/release/ecs-build
[ -x "$bin" ] || { echo "config-new: $bin missing; run make build" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ours() {
  rm -rf "$tmp/cfg"
  "$bin" config new --domain bench.example.org --out "$tmp/cfg" >/dev/null 2>&1
}

original() {
  local home="$tmp/gnupg"
  rm -rf "$home" && mkdir -m 700 "$home"
  for _ in 1 2 3; do openssl rand -base64 39 >/dev/null; done
  openssl genrsa 2048 >/dev/null 2>&1
  for name in ecs_backup ecs_mediaserver ecs_authority; do
    gpg --homedir "$home" --batch --pinentry-mode loopback --passphrase '' \
      --quick-gen-key "$name" rsa2048 default never >/dev/null 2>&1
    gpg --homedir "$home" --batch --armor --export-secret-keys "$name" >/dev/null 2>&1
  done
}

time_ms() {
  "$@"
  local start end i
  start=$(date +%s%N)
  for ((i = 0; i < RUNS; i++)); do "$@"; done
  end=$(date +%s%N)
  echo $(((end - start) / RUNS / 1000000))
}

ours_ms=$(time_ms ours)
orig_ms=$(time_ms original)
awk -v o="$ours_ms" -v t="$orig_ms" -v r="$RUNS" \
  'BEGIN { printf "config-new: ours %d ms (env.yml + seed.iso + env.pdf), original tool chain %d ms (keys only), ratio X/Y = %.2f (%d runs each)\n", o, t, o / t, r }'
