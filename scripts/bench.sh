#!/usr/bin/env bash
# Runs every benchmark script under scripts/bench/; each prints its own ratio lines.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in scripts/bench/*.sh; do
  echo "== $b"
  "$b"
done
