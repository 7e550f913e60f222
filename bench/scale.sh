#!/usr/bin/env bash
# How Tessera grows with its user count, rerunnable with one command:
#   bash bench/scale.sh                 # env: SCALES="10000 100000 1000000" DUR=10s CONNS=64
# For each scale: a fresh data dir provisioned through POST /admin/import
# (import time), the database file size, start-to-ready (5 starts), login
# throughput and p99 with wrk (random users, generated passwords), peak RSS
# under that load, and the criterion store-lookup micro-bench at that size.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SCALES=${SCALES:-10000 100000 1000000}
DUR=${DUR:-10s}; CONNS=${CONNS:-64}
OUT=${OUT:-/tmp/tessera-scale}
rm -rf "$OUT"; mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
. "$HERE/lib.sh"
need_tools

echo "== building release"
(cd "$ROOT" && cargo build --release -q)
BIN=$ROOT/target/release/tessera

for N in $SCALES; do
  echo "-- $N users" | tee -a "$SUMMARY"
  DATA=$OUT/data-$N
  start
  AUTH="Authorization: Bearer $(cat "$DATA/admin.token")"
  curl -sf -H "$AUTH" "http://$ADMIN/admin/export" | python3 "$HERE/make_users.py" "$N" >"$OUT/snapshot-$N.jsonl"
  IMPORT_S=$(curl -sf -o /dev/null -w '%{time_total}' -H "$AUTH" -T "$OUT/snapshot-$N.jsonl" -X POST "http://$ADMIN/admin/import")
  echo "import: ${IMPORT_S}s ($(du -h "$OUT/snapshot-$N.jsonl" | cut -f1) snapshot), peak RSS during import $(( $(rss_peak_kib "$SRV") / 1024 )) MiB" | tee -a "$SUMMARY"
  stop
  rm -f "$OUT/snapshot-$N.jsonl"
  echo "database file: $(du -h "$DATA/tessera.redb" | cut -f1)" | tee -a "$SUMMARY"
  : >"$OUT/ready-$N.txt"
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    start
    until curl -sf -o /dev/null "http://$PARTNER/readyz" 2>/dev/null; do sleep 0.002; done
    t1=$(date +%s%N)
    echo "$(( (t1 - t0) / 1000000 ))" >>"$OUT/ready-$N.txt"
    stop
  done
  echo "start-to-ready ms: $(tr '\n' ' ' <"$OUT/ready-$N.txt")" | tee -a "$SUMMARY"
  start
  USERS=$N measure "login $N users" "$CONNS" -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
  echo "peak RSS under login load: $(( $(rss_peak_kib "$SRV") / 1024 )) MiB" | tee -a "$SUMMARY"
  stop
  (cd "$ROOT" && TESSERA_BENCH_USERS=$N cargo bench -q --bench micro -- "store lookup" 2>/dev/null) \
    | grep -A1 "store lookup" | grep "time:" | sed "s/^/store lookup $N users: /" | tee -a "$SUMMARY" || true
done
echo "summary: $SUMMARY"
