#!/usr/bin/env bash
# Tessera load benchmark, rerunnable with one command:  bash bench/run.sh
#
# Builds release, starts Tessera on a temp data dir, provisions 100k users
# through the real admin import, then measures with wrk over loopback (the
# "shared" layout of ../shared/peers: server unpinned with 2 tokio workers,
# wrk -t1 unpinned, so both share the 2 cores):
#   - POST /generateToken, random users, generated passwords
#   - POST /oauth/token, client_credentials with HTTP Basic, random users
#   - GET /verify, one hot token reused
#   - GET /verify, many distinct tokens (more than the verified-token cache)
#   - generated-password logins while 32 connections hammer an Argon2id user
#   - the hostile flood (SPEC §5): 256 connections of non-UUID guesses for
#     unknown users, while 8 connections log in with generated passwords and
#     2 send admin PATCHes; reports their p99s, the flood's 503s (from the
#     server's own counter), socket errors, and peak RSS
# It reports req/s, p50/p99, non-2xx, server CPU µs per request and peak RSS,
# start-to-ready on the 100k-user data dir and the import time, then runs the
# reference peers (warp hello/sign, node-oidc-provider with 2 workers, the
# one-core verify_strict ceiling) in the same run and prints every ratio.
#
# Env: DUR (10s), CONNS (64), USERS (100000), ROUNDS (3), OUT (/tmp/tessera-bench),
#      PEERS=0 to skip the peers (no ratios then), TWO_SECRETS=1 to give every
#      user a rotation in progress (two valid secrets, SPEC §15).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
DUR=${DUR:-10s}; CONNS=${CONNS:-64}; USERS=${USERS:-100000}
OUT=${OUT:-/tmp/tessera-bench}; PEERS=${PEERS:-1}
rm -rf "$OUT"; mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt

. "$HERE/lib.sh"
need_tools

echo "== building release"
(cd "$ROOT" && cargo build --release -q)
BIN=$ROOT/target/release/tessera
DATA=$OUT/data

echo "== provisioning $USERS users through POST /admin/import"
start
TOKEN_ADMIN=$(cat "$DATA/admin.token")
AUTH="Authorization: Bearer $TOKEN_ADMIN"
curl -sf -H "$AUTH" "http://$ADMIN/admin/export" | python3 "$HERE/make_users.py" "$USERS" >"$OUT/snapshot.jsonl"
IMPORT_S=$(curl -sf -o /dev/null -w '%{time_total}' -H "$AUTH" --data-binary @"$OUT/snapshot.jsonl" "http://$ADMIN/admin/import")
echo "users hold two secrets (TWO_SECRETS): ${TWO_SECRETS:-0}" | tee -a "$SUMMARY"
echo "import of $USERS users: ${IMPORT_S}s ($(du -h "$OUT/snapshot.jsonl" | cut -f1) snapshot)" | tee -a "$SUMMARY"
curl -sf -o /dev/null -H "$AUTH" "http://$ADMIN/admin/users" \
  -d '{"username":"chosen","password":"operator-chosen-password"}'
stop

echo "== start-to-ready on the $USERS-user data dir (5 starts)"
for _ in 1 2 3 4 5; do
  t0=$(date +%s%N)
  start
  until curl -sf -o /dev/null "http://$PARTNER/readyz" 2>/dev/null; do sleep 0.002; done
  t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000000 ))" >>"$OUT/ready_ms.txt"
  stop
done
echo "start-to-ready ms (process spawn to first 200 /readyz, 5 starts): $(tr '\n' ' ' <"$OUT/ready_ms.txt")" | tee -a "$SUMMARY"

start
U0="username=user000042&password=00000000-0000-4000-8000-000000000042"
echo "sample: $(curl -s -X POST "http://$PARTNER/generateToken?$U0" | head -c 120)…"
echo "wrong password -> $(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$PARTNER/generateToken?username=user000042&password=x")"
HOT=$(curl -sf -X POST "http://$PARTNER/generateToken?$U0")
python3 "$HERE/fetch_tokens.py" "$PARTNER" 20000 "$USERS" >"$OUT/tokens.txt"
python3 "$HERE/basic_headers.py" 1000 "$USERS" >"$OUT/basic.txt"
echo "oauth sample: $(curl -s -X POST -H "Authorization: $(head -1 "$OUT/basic.txt")" -d grant_type=client_credentials "http://$PARTNER/oauth/token" | head -c 80)…"

# The reference servers of ../shared/peers, run side by side (not copied):
# warp hello (HTTP ceiling) and warp sign (EdDSA JWT, no lookup).
PEER_TARGET=/tmp/peers/target
if [ "$PEERS" = 1 ]; then
  echo "== building the peers' reference servers"
  mkdir -p /tmp/peers
  (cd "$PEERS_DIR/bench" && CARGO_TARGET_DIR=$PEER_TARGET cargo build --release -q --bin httpsrv --bin micro)
fi
peer_start() { # mode
  "$PEER_TARGET/release/httpsrv" "$1" 3030 2 2>/dev/null & PEER=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null -X POST "http://127.0.0.1:3030/generateToken?username=user000001&password=secret" && break; sleep 0.05; done
}
peer_stop() { kill "$PEER" 2>/dev/null || true; wait "$PEER" 2>/dev/null || true; }
peer_measure() { # label mode
  local f="$OUT/wrk-${1// /_}-$r.txt" t0 t1
  peer_start "$2"
  wrk -t1 -c"$CONNS" -d3s -s "$PEERS_DIR/wrk/static.lua" "http://127.0.0.1:3030/generateToken?username=user000042&password=secret" >/dev/null 2>&1 || true
  t0=$(cpu_ticks "$PEER")
  wrk -t1 -c"$CONNS" -d"$DUR" --latency -s "$PEERS_DIR/wrk/static.lua" "http://127.0.0.1:3030/generateToken?username=user000042&password=secret" >"$f" 2>&1
  t1=$(cpu_ticks "$PEER")
  peer_stop
  summ "$f" "$1 -c$CONNS" $((t1 - t0))
}

ROUNDS=${ROUNDS:-3}
echo "== load: wrk -t1 -c$CONNS, $DUR, shared layout; $ROUNDS rounds, each Tessera figure next to its baseline"
for r in $(seq 1 "$ROUNDS"); do
  echo "-- round $r" | tee -a "$SUMMARY"
  [ "$PEERS" = 1 ] && peer_measure "peer warp sign" sign
  USERS=$USERS measure "tessera generateToken" "$CONNS" -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
  HEADERS_FILE=$OUT/basic.txt measure "tessera oauth token basic" "$CONNS" -s "$HERE/wrk/oauth.lua" "http://$PARTNER/oauth/token"
  [ "$PEERS" = 1 ] && peer_measure "peer warp hello" hello
  measure "tessera verify hot" "$CONNS" -H "Authorization: Bearer $HOT" "http://$PARTNER/verify"
  TOKENS_FILE=$OUT/tokens.txt measure "tessera verify distinct" "$CONNS" -s "$HERE/wrk/verify_many.lua" "http://$PARTNER/verify"
done
echo "peak RSS under the token/verify load: $(( $(rss_peak_kib "$SRV") / 1024 )) MiB" | tee -a "$SUMMARY"

echo "== generated-password logins while 32 connections hammer an Argon2id user"
USERS=$USERS measure "tessera generateToken quiet" 8 -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
wrk -t1 -c32 -d16s --latency -s "$HERE/wrk/chosen.lua" "http://$PARTNER/generateToken" >"$OUT/wrk-argon2-hammer.txt" 2>&1 &
HAMMER=$!
sleep 2
USERS=$USERS measure "tessera generateToken under argon2" 8 -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
wait "$HAMMER" || true
echo "argon2 hammer: $(awk '/Requests\/sec/{print $2}' "$OUT/wrk-argon2-hammer.txt") req/s, p99 $(awk '$1=="99%"{print $2}' "$OUT/wrk-argon2-hammer.txt"), non-2xx $(awk '/Non-2xx/{print $NF}' "$OUT/wrk-argon2-hammer.txt")" | tee -a "$SUMMARY"
echo "peak RSS including the argon2 burst: $(( $(rss_peak_kib "$SRV") / 1024 )) MiB" | tee -a "$SUMMARY"
stop

echo "== hostile flood: 256 connections of non-UUID guesses for unknown users"
start   # fresh process, so its peak RSS is the flood's
busy_count() { curl -sf -H "$AUTH" "http://$ADMIN/metrics" | awk '/^tessera_token_requests_total\{endpoint="generate_token",outcome="busy"\}/{print $2}'; }
BUSY0=$(busy_count); BUSY0=${BUSY0:-0}
FLOOD_S=$(( ${DUR%s} + 6 ))
wrk -t1 -c256 -d"${FLOOD_S}s" --timeout 10s --latency -s "$HERE/wrk/flood.lua" "http://$PARTNER/generateToken" >"$OUT/wrk-flood.txt" 2>&1 &
FLOOD=$!
sleep 2
ADMIN_TOKEN=$TOKEN_ADMIN wrk -t1 -c2 -d"$DUR" --latency -s "$HERE/wrk/patch.lua" "http://$ADMIN/admin/users" >"$OUT/wrk-flood-admin-patch.txt" 2>&1 &
PATCHER=$!
USERS=$USERS measure "tessera generateToken under flood" 8 -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
wait "$PATCHER" || true
wait "$FLOOD" || true
BUSY1=$(busy_count); BUSY1=${BUSY1:-0}
summ "$OUT/wrk-flood-admin-patch.txt" "admin PATCH under flood -c2" 0 >/dev/null
{
  echo "flood: $(awk '/Requests\/sec/{print $2}' "$OUT/wrk-flood.txt") req/s, p99 $(awk '$1=="99%"{print $2}' "$OUT/wrk-flood.txt"), 503 server busy: $((BUSY1 - BUSY0)), non-2xx $(awk '/Non-2xx/{print $NF}' "$OUT/wrk-flood.txt"), socket errors: $(grep -h 'Socket errors' "$OUT"/wrk-flood*.txt "$OUT/wrk-tessera_generateToken_under_flood.txt" | tr '\n' ' ')"
  echo "admin PATCH under flood: $(awk '/Requests\/sec/{print $2}' "$OUT/wrk-flood-admin-patch.txt") req/s, p50 $(awk '$1=="50%"{print $2}' "$OUT/wrk-flood-admin-patch.txt"), p99 $(awk '$1=="99%"{print $2}' "$OUT/wrk-flood-admin-patch.txt"), non-2xx $(awk '/Non-2xx/{print $NF}' "$OUT/wrk-flood-admin-patch.txt")"
  echo "peak RSS under the flood: $(( $(rss_peak_kib "$SRV") / 1024 )) MiB (targets: login p99 <= 5 ms, admin PATCH p99 <= 50 ms, RSS <= 96 MiB)"
} | tee -a "$SUMMARY"
stop

median() { sort -n | awk '{a[NR]=$1} END{ if (NR==0) print 0; else print a[int((NR+1)/2)] }'; }
rps_all() { awk -v l="$1" 'index($0, l) == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^req\/s=/) { sub("req/s=", "", $i); print $i } }' "$SUMMARY"; }
if [ "$PEERS" = 1 ]; then
  echo "== node-oidc-provider, 2 workers (same run)"
  OUT=$OUT/peers DUR=$DUR LAYOUTS=cluster2 bash "$PEERS_DIR/run_oidc.sh" >"$OUT/peers-oidc.log" 2>&1 || true
  cat "$OUT/peers/summary.txt" >>"$SUMMARY" 2>/dev/null || true
  echo "== one core of verify_strict (peers' micro, taskset -c 1)"
  RUN_SECS=2 taskset -c 1 "$PEER_TARGET/release/micro" ed25519 >"$OUT/peers-micro.txt" 2>&1 || true
  grep verify_strict "$OUT/peers-micro.txt" | tee -a "$SUMMARY"
  SIGN=$(rps_all "peer warp sign -c$CONNS" | median)
  HELLO=$(rps_all "peer warp hello -c$CONNS" | median)
  OIDC=$(rps_of "oidc jwt/EdDSA cluster2 -c$CONNS" "$OUT/peers/summary.txt")
  VSTRICT=$(awk '/verify_strict/{for(i=1;i<=NF;i++) if($i=="ops/s") print $(i-1)}' "$OUT/peers-micro.txt" | head -1)
  GEN=$(rps_all "tessera generateToken -c$CONNS" | median)
  HOTR=$(rps_all "tessera verify hot -c$CONNS" | median)
  DIST=$(rps_all "tessera verify distinct -c$CONNS" | median)
  OAUTH=$(rps_all "tessera oauth token basic -c$CONNS" | median)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
  {
    echo "== ratios of medians over $ROUNDS rounds (same run)"
    echo "generateToken / warp sign      = $(ratio "$GEN" "$SIGN")   (target >= 0.9; $GEN vs $SIGN)"
    echo "oauth/token basic / warp sign  = $(ratio "$OAUTH" "$SIGN")   (target >= 0.85; $OAUTH vs $SIGN)"
    echo "generateToken / oidc cluster2  = $(ratio "$GEN" "$OIDC")   (target >= 6; $GEN vs $OIDC)"
    echo "verify hot / warp hello        = $(ratio "$HOTR" "$HELLO")   (target >= 0.6; $HOTR vs $HELLO)"
    echo "verify distinct / verify_strict one core = $(ratio "$DIST" "$VSTRICT")   (target >= 0.8; $DIST vs $VSTRICT ops/s)"
  } | tee -a "$SUMMARY"
fi
echo "== test environment: serve --ephemeral --seed (1,000 UUID-password users)"
STARTS=10 bash "$HERE/ephemeral.sh" | tail -1 | tee -a "$SUMMARY"
echo "== cluster mode on PostgreSQL (bench/cluster.sh)"
# Its own OUT: cluster.sh starts by emptying OUT, which must not be this
# run's (an OUT taken from the env would otherwise be passed on).
OUT=$OUT/cluster DUR=$DUR CONNS=$CONNS bash "$HERE/cluster.sh" | tail -5 | tee -a "$SUMMARY"
echo "summary: $SUMMARY"
