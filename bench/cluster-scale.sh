#!/usr/bin/env bash
# Cluster mode with a large user base, rerunnable:
#   bash bench/cluster-scale.sh      (USERS=1000000 HOT=10000 DUR=10s CONNS=64)
# On throwaway PostgreSQL instances (scripts/pg.sh) and one machine:
#   1. POST /admin/import of USERS users into node A (streamed, COPY): time
#      and node A's peak RSS (targets: <= 120 s, <= 256 MiB);
#   2. node B started on that database: spawn to first 200 /readyz, and its
#      RSS (targets: <= 15 s, <= 512 MiB);
#   3. POST /generateToken on node B for HOT users of the USERS (a working
#      set the node's user cache holds), against a node whose database
#      holds only HOT users (target: >= 0.9x), and node B's RSS after.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DUR=${DUR:-10s}; CONNS=${CONNS:-64}; USERS=${USERS:-1000000}; HOT=${HOT:-10000}
OUT=${OUT:-/tmp/tessera-bench-cluster-scale}
rm -rf "$OUT"; mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
. "$HERE/lib.sh"
need_tools
(cd "$ROOT" && cargo build --release -q)
BIN=$ROOT/target/release/tessera
PG_BIG=/tmp/tessera-pg-scale-big-$$ PG_SMALL=/tmp/tessera-pg-scale-small-$$
BIG=$(bash "$ROOT/scripts/pg.sh" start "$PG_BIG" $$)
SMALL=$(bash "$ROOT/scripts/pg.sh" start "$PG_SMALL" $$)
(umask 077; echo "token-for-the-cluster-bench-0123456789" >"$OUT/admin.token")
AUTH="Authorization: Bearer token-for-the-cluster-bench-0123456789"
NODES=()
node() { # name url -> starts a node; sets NP NA NPID
  local log=$OUT/$1.log
  "$BIN" serve --database "$2" --admin-token-file "$OUT/admin.token" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --throttle-failures 1000000 2>"$log" &
  NPID=$!; NODES+=($NPID)
  for _ in $(seq 1 3000); do grep -q 'listening admin=' "$log" 2>/dev/null && break; sleep 0.01; done
  NP=$(grep -o 'listening partner=[0-9.:]*' "$log" | cut -d= -f2)
  NA=$(grep -o 'listening admin=[0-9.:]*' "$log" | cut -d= -f2)
}
cleanup() {
  for p in "${NODES[@]:-}"; do kill "$p" 2>/dev/null || true; done
  bash "$ROOT/scripts/pg.sh" kill "$PG_BIG" || true; bash "$ROOT/scripts/pg.sh" kill "$PG_SMALL" || true
}
trap cleanup EXIT
rss_mib() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
hwm_mib() { awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
load() { # file url
  USERS=$HOT wrk -t1 -c"$CONNS" -d3s -s "$HERE/wrk/gentoken.lua" "$2" >/dev/null 2>&1 || true
  USERS=$HOT wrk -t1 -c"$CONNS" -d"$DUR" --latency -s "$HERE/wrk/gentoken.lua" "$2" >"$1" 2>&1
}
rps() { awk '/Requests\/sec/{print $2}' "$1"; }

echo "== node A: import of $USERS users"
node a "$BIG"; A=$NA; APID=$NPID
curl -sf -H "$AUTH" "http://$A/admin/export" >"$OUT/template.jsonl"
python3 "$HERE/make_users.py" "$USERS" <"$OUT/template.jsonl" >"$OUT/big.jsonl"
python3 "$HERE/make_users.py" "$HOT" <"$OUT/template.jsonl" >"$OUT/small.jsonl"
BEFORE=$(hwm_mib "$APID")
IMPORT_S=$(curl -sf -o "$OUT/import.json" -w '%{time_total}' -H "$AUTH" --data-binary @"$OUT/big.jsonl" "http://$A/admin/import")
AFTER=$(hwm_mib "$APID")

echo "== node B started on the $USERS-user database"
t0=$(date +%s%N)
node b "$BIG"; B=$NP; BPID=$NPID
until curl -sf -o /dev/null "http://$B/readyz" 2>/dev/null; do sleep 0.01; done
t1=$(date +%s%N)
READY_MS=$(( (t1 - t0) / 1000000 )); READY_RSS=$(rss_mib "$BPID")
load "$OUT/big.txt" "http://$B/generateToken"
BIG_RSS=$(hwm_mib "$BPID")

echo "== node C on a database of $HOT users"
node c "$SMALL"; C=$NP; CA=$NA
curl -sf -o /dev/null -H "$AUTH" --data-binary @"$OUT/small.jsonl" "http://$CA/admin/import"
load "$OUT/small.txt" "http://$C/generateToken"
{
  echo "== cluster at scale, $(date -u +%F), USERS=$USERS HOT=$HOT wrk -t1 -c$CONNS -d$DUR (bash bench/cluster-scale.sh)"
  echo "import of $USERS users into node A: ${IMPORT_S}s ($(du -h "$OUT/big.jsonl" | cut -f1) snapshot); node A peak RSS ${BEFORE} MiB before, ${AFTER} MiB after (targets <= 120 s, <= 256 MiB)"
  echo "node B on $USERS users: /readyz 200 after ${READY_MS} ms, RSS ${READY_RSS} MiB (targets <= 15 s, <= 512 MiB)"
  echo "generateToken node B ($HOT hot of $USERS users)  $(rps "$OUT/big.txt") req/s, peak RSS ${BIG_RSS} MiB"
  echo "generateToken node C ($HOT users)                $(rps "$OUT/small.txt") req/s"
  echo "ratio B / C = $(awk -v a="$(rps "$OUT/big.txt")" -v b="$(rps "$OUT/small.txt")" 'BEGIN{printf "%.2f", a/b}') (target >= 0.9)"
} | tee -a "$SUMMARY"
