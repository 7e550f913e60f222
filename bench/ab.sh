#!/usr/bin/env bash
# Compares builds of Tessera on POST /generateToken, alternating them (and
# the peers' warp sign baseline) round by round on one provisioned data dir:
#   bash bench/ab.sh DATA_DIR BIN_A BIN_B [BIN_C …]
# DATA_DIR is a data dir provisioned by bench/run.sh (/tmp/tessera-bench/data).
# Env: DUR (10s), CONNS (64), ROUNDS (3), USERS (100000),
#      ENDPOINT (generateToken, or oauth: POST /oauth/token with HTTP Basic).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
SRC_DATA=$1; shift
DUR=${DUR:-10s}; CONNS=${CONNS:-64}; ROUNDS=${ROUNDS:-3}; USERS=${USERS:-100000}
ENDPOINT=${ENDPOINT:-generateToken}
OUT=${OUT:-/tmp/tessera-ab}
rm -rf "$OUT"; mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
. "$HERE/lib.sh"
need_tools
python3 "$HERE/basic_headers.py" 1000 "$USERS" >"$OUT/basic.txt"
PEER_TARGET=/tmp/peers/target
(cd "$PEERS_DIR/bench" && CARGO_TARGET_DIR=$PEER_TARGET cargo build --release -q --bin httpsrv)
for r in $(seq 1 "$ROUNDS"); do
  "$PEER_TARGET/release/httpsrv" sign 3030 2 2>/dev/null & PEER=$!
  sleep 0.5
  wrk -t1 -c"$CONNS" -d3s -s "$PEERS_DIR/wrk/static.lua" "http://127.0.0.1:3030/generateToken?username=user000042&password=secret" >/dev/null 2>&1 || true
  t0=$(cpu_ticks "$PEER")
  wrk -t1 -c"$CONNS" -d"$DUR" --latency -s "$PEERS_DIR/wrk/static.lua" "http://127.0.0.1:3030/generateToken?username=user000042&password=secret" >"$OUT/sign-$r.txt" 2>&1
  t1=$(cpu_ticks "$PEER")
  kill "$PEER"; wait "$PEER" 2>/dev/null || true
  summ "$OUT/sign-$r.txt" "sign" $((t1 - t0))
  i=0
  for BIN in "$@"; do
    i=$((i + 1))
    DATA=$OUT/data; rm -rf "$DATA"; cp -r "$SRC_DATA" "$DATA"
    start
    if [ "$ENDPOINT" = oauth ]; then
      HEADERS_FILE=$OUT/basic.txt measure "build$i" "$CONNS" -s "$HERE/wrk/oauth.lua" "http://$PARTNER/oauth/token"
    else
      USERS=$USERS measure "build$i" "$CONNS" -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
    fi
    stop
  done
done
median() { sort -n | awk '{a[NR]=$1} END{ if (NR==0) print 0; else print a[int((NR+1)/2)] }'; }
rps() { awk -v l="$1 " 'index($0, l) == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^req\/s=/) { sub("req/s=", "", $i); print $i } }' "$SUMMARY"; }
SIGN=$(rps sign | median)
i=0
for BIN in "$@"; do
  i=$((i + 1))
  R=$(rps "build$i -c$CONNS" | median)
  echo "build$i ($BIN): $R req/s, $(awk -v a="$R" -v b="$SIGN" 'BEGIN{printf "%.2f", a/b}')x warp sign ($SIGN)" | tee -a "$SUMMARY"
done
