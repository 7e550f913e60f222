#!/usr/bin/env bash
# User-space instructions per POST /generateToken, counted by callgrind:
# repeatable on a noisy shared host where wall-clock ratios move by ±5%.
#   bash bench/instructions.sh DATA_DIR BIN [BIN …]
# DATA_DIR is a data dir provisioned by bench/run.sh (/tmp/tessera-bench/data).
# Each binary serves 1,000 and then 3,000 logins (random users, keep-alive);
# the difference over 2,000 removes start-up.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC_DATA=$1; shift
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
OUT=${OUT:-/tmp/tessera-instructions}; mkdir -p "$OUT"
count() { # bin n -> total Ir
  rm -rf "$OUT/data"; cp -r "$SRC_DATA" "$OUT/data"
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg-$2.out" "$1" serve --data-dir "$OUT/data" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --throttle-failures 1000000 2>"$OUT/server.log" &
  local S=$!
  for _ in $(seq 1 300); do grep -q 'listening admin=' "$OUT/server.log" 2>/dev/null && break; sleep 0.1; done
  local P; P=$(grep -o 'listening partner=[0-9.:]*' "$OUT/server.log" | cut -d= -f2)
  python3 "$HERE/fetch_tokens.py" "$P" "$2" 100000 >/dev/null
  kill -INT "$S"; wait "$S" 2>/dev/null || true
  awk '/^(summary|totals):/{print $2; exit}' "$OUT/cg-$2.out"
}
for BIN in "$@"; do
  a=$(count "$BIN" 1000); c=$(count "$BIN" 3000)
  echo "$BIN: $(( (c - a) / 2000 )) user-space instructions per /generateToken"
done
