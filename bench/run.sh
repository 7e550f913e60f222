#!/usr/bin/env bash
# Tessera load benchmark, rerunnable with one command:  bash bench/run.sh
#
# Builds release, starts Tessera on a temp data dir, provisions 100k users
# through the real admin import, then measures with wrk over loopback (the
# "shared" layout of ../shared/peers: server unpinned with 2 tokio workers,
# wrk -t1 unpinned, so both share the 2 cores):
#   - POST /generateToken, random users, generated passwords
#   - GET /verify, one hot token reused
#   - GET /verify, many distinct tokens (more than the verified-token cache)
#   - generated-password logins while 32 connections hammer an Argon2id user
# It reports req/s, p50/p99, non-2xx, server CPU µs per request and peak RSS,
# start-to-ready on the 100k-user data dir and the import time, then runs the
# reference peers (warp hello/sign, node-oidc-provider with 2 workers, the
# one-core verify_strict ceiling) in the same run and prints every ratio.
#
# Env: DUR (10s), CONNS (64), USERS (100000), OUT (/tmp/tessera-bench),
#      PEERS=0 to skip the peers (no ratios then).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
DUR=${DUR:-10s}; CONNS=${CONNS:-64}; USERS=${USERS:-100000}
OUT=${OUT:-/tmp/tessera-bench}; PEERS=${PEERS:-1}
rm -rf "$OUT"; mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need curl || ! need taskset; then
  echo "installing wrk/curl from Debian's packages"
  apt-get update -qq && apt-get install -y -qq wrk curl util-linux >/dev/null
fi

echo "== building release"
(cd "$ROOT" && cargo build --release -q)
BIN=$ROOT/target/release/tessera
DATA=$OUT/data

SRV=""; PARTNER=""; ADMIN=""
start() { # starts Tessera on $DATA, sets SRV PARTNER ADMIN
  "$BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --throttle-failures 1000000 2>"$OUT/server.log" &
  SRV=$!
  for _ in $(seq 1 200); do
    grep -q 'listening admin=' "$OUT/server.log" 2>/dev/null && break; sleep 0.01
  done
  PARTNER=$(grep -o 'listening partner=[0-9.:]*' "$OUT/server.log" | cut -d= -f2)
  ADMIN=$(grep -o 'listening admin=[0-9.:]*' "$OUT/server.log" | cut -d= -f2)
}
stop() { kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; }
trap stop EXIT

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_peak_kib() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
summ() { # file label ticks -> prints and records "label rps p50 p99 non2xx cpu_us"
  local f=$1 rps p50 p99 non2xx reqs cpuus
  rps=$(awk '/Requests\/sec/{print $2}' "$f"); p50=$(awk '$1=="50%"{print $2}' "$f")
  p99=$(awk '$1=="99%"{print $2}' "$f"); non2xx=$(awk '/Non-2xx/{print $NF}' "$f")
  reqs=$(awk '/requests in/{print $1}' "$f")
  cpuus=$(awk -v t="$3" -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN{ if (n>0) printf "%.1f", t/hz*1e6/n; else print "n/a"}')
  printf '%-34s req/s=%-10s p50=%-9s p99=%-9s non2xx=%-5s srv_cpu_us/req=%s\n' \
    "$2" "$rps" "$p50" "$p99" "${non2xx:-0}" "$cpuus" | tee -a "$SUMMARY"
}
measure() { # label conns wrk-args...
  local label=$1 c=$2; shift 2
  wrk -t1 -c"$c" -d3s "$@" >/dev/null 2>&1 || true        # warm-up
  local f="$OUT/wrk-${label// /_}.txt" t0 t1
  t0=$(cpu_ticks "$SRV")
  wrk -t1 -c"$c" -d"$DUR" --latency "$@" >"$f" 2>&1
  t1=$(cpu_ticks "$SRV")
  summ "$f" "$label -c$c" $((t1 - t0))
}
rps_of() { awk -v l="$1" 'index($0, l) == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^req\/s=/) { sub("req/s=", "", $i); print $i } }' "$2" | tail -1; }

echo "== provisioning $USERS users through POST /admin/import"
start
TOKEN_ADMIN=$(cat "$DATA/admin.token")
AUTH="Authorization: Bearer $TOKEN_ADMIN"
curl -sf -H "$AUTH" "http://$ADMIN/admin/export" | python3 "$HERE/make_users.py" "$USERS" >"$OUT/snapshot.jsonl"
IMPORT_S=$(curl -sf -o /dev/null -w '%{time_total}' -H "$AUTH" --data-binary @"$OUT/snapshot.jsonl" "http://$ADMIN/admin/import")
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

echo "== load (wrk -t1, $DUR, shared layout)"
USERS=$USERS measure "tessera generateToken" "$CONNS" -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
measure "tessera verify hot" "$CONNS" -H "Authorization: Bearer $HOT" "http://$PARTNER/verify"
TOKENS_FILE=$OUT/tokens.txt measure "tessera verify distinct" "$CONNS" -s "$HERE/wrk/verify_many.lua" "http://$PARTNER/verify"

echo "== generated-password logins while 32 connections hammer an Argon2id user"
USERS=$USERS measure "tessera generateToken quiet" 8 -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
wrk -t1 -c32 -d16s --latency -s "$HERE/wrk/chosen.lua" "http://$PARTNER/generateToken" >"$OUT/wrk-argon2-hammer.txt" 2>&1 &
HAMMER=$!
sleep 2
USERS=$USERS measure "tessera generateToken under argon2" 8 -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
wait "$HAMMER" || true
summ "$OUT/wrk-argon2-hammer.txt" "tessera argon2 hammer -c32" 0 >/dev/null
echo "argon2 hammer: $(awk '/Requests\/sec/{print $2}' "$OUT/wrk-argon2-hammer.txt") req/s, p99 $(awk '$1=="99%"{print $2}' "$OUT/wrk-argon2-hammer.txt")" | tee -a "$SUMMARY"
echo "peak RSS: $(( $(rss_peak_kib "$SRV") / 1024 )) MiB" | tee -a "$SUMMARY"
stop

if [ "$PEERS" = 1 ]; then
  echo "== peers (same run)"
  mkdir -p /tmp/peers
  OUT=$OUT/peers DUR=$DUR bash "$PEERS_DIR/run_http.sh" hello sign >"$OUT/peers-http.log" 2>&1 || true
  OUT=$OUT/peers DUR=$DUR LAYOUTS=cluster2 bash "$PEERS_DIR/run_oidc.sh" >"$OUT/peers-oidc.log" 2>&1 || true
  (cd "$PEERS_DIR/bench" && CARGO_TARGET_DIR=/tmp/peers/target cargo build --release -q --bin micro) >/dev/null 2>&1 || true
  RUN_SECS=2 taskset -c 1 /tmp/peers/target/release/micro ed25519 >"$OUT/peers-micro.txt" 2>&1 || true
  cat "$OUT/peers/summary.txt" >>"$SUMMARY" 2>/dev/null || true
  HELLO=$(rps_of "hello shared -c$CONNS" "$OUT/peers/summary.txt")
  SIGN=$(rps_of "sign shared -c$CONNS" "$OUT/peers/summary.txt")
  OIDC=$(rps_of "oidc jwt/EdDSA cluster2 -c$CONNS" "$OUT/peers/summary.txt")
  VSTRICT=$(awk '/verify_strict/{for(i=1;i<=NF;i++) if($i=="ops/s") print $(i-1)}' "$OUT/peers-micro.txt" | head -1)
  GEN=$(rps_of "tessera generateToken -c$CONNS" "$SUMMARY")
  HOTR=$(rps_of "tessera verify hot -c$CONNS" "$SUMMARY")
  DIST=$(rps_of "tessera verify distinct -c$CONNS" "$SUMMARY")
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
  {
    echo "== ratios (same run)"
    echo "generateToken / warp sign      = $(ratio "$GEN" "$SIGN")   (target >= 0.9; $GEN vs $SIGN)"
    echo "generateToken / oidc cluster2  = $(ratio "$GEN" "$OIDC")   (target >= 6; $GEN vs $OIDC)"
    echo "verify hot / warp hello        = $(ratio "$HOTR" "$HELLO")   (target >= 0.6; $HOTR vs $HELLO)"
    echo "verify distinct / verify_strict one core = $(ratio "$DIST" "$VSTRICT")   (target >= 0.8; $DIST vs $VSTRICT ops/s)"
  } | tee -a "$SUMMARY"
fi
echo "summary: $SUMMARY"
