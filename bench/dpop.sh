#!/usr/bin/env bash
# DPoP's cost (SPEC §17), rerunnable with one command:  bash bench/dpop.sh
# Starts Tessera on a fresh data dir with one partner, then with wrk -t1
# -c64 over loopback (each DPoP request with a fresh proof from
# bench/dpop_proofs.py, made beforehand):
#   - GET /verify: a bearer token vs a DPoP-bound one with its proof
#   - POST /oauth/token: without a proof vs with one
# and prints req/s, p50, p99 and the p99 differences (target: /verify
# with DPoP ≤ 1 ms more at p99), saturated (each connection sends as soon
# as it is answered) and at an offered rate (each pauses 10 ms). The server runs with --clock-leeway 10m
# so proofs made before the run stay fresh through it.
# Env: DUR (10s), CONNS (64), PROOFS (450000), OUT (/tmp/tessera-dpop-bench).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DUR=${DUR:-10s}; CONNS=${CONNS:-64}; PROOFS=${PROOFS:-450000}
OUT=${OUT:-/tmp/tessera-dpop-bench}
rm -rf "$OUT"; mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
. "$HERE/lib.sh"
need_tools
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install --quiet cryptography

echo "== building release"
(cd "$ROOT" && cargo build --release -q)
BIN=$ROOT/target/release/tessera
DATA=$OUT/data
SERVE_ARGS="--clock-leeway 10m" start
AUTH="Authorization: Bearer $(cat "$DATA/admin.token")"
SECRET=$(curl -sf -H "$AUTH" "http://$ADMIN/admin/users" -d '{"username":"bench"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])')
BASIC="Basic $(printf 'bench:%s' "$SECRET" | base64 -w0)"
LOGIN_PROOF=$(python3 "$HERE/dpop_proofs.py" 1 POST "http://$PARTNER/oauth/token" </dev/null)
BOUND=$(curl -sf -H "Authorization: $BASIC" -H "DPoP: $LOGIN_PROOF" -d grant_type=client_credentials \
  "http://$PARTNER/oauth/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
PLAIN=$(curl -sf -H "Authorization: $BASIC" -d grant_type=client_credentials "http://$PARTNER/oauth/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

echo "== making $PROOFS proofs for each DPoP run (two processes)"
proofs() { # file htm htu [--ath]
  local half=$((PROOFS / 2))
  PREFIX=a python3 "$HERE/dpop_proofs.py" "$half" "$2" "$3" ${4:-} <<<"$BOUND" >"$1.a" &
  local other=$!
  PREFIX=b python3 "$HERE/dpop_proofs.py" "$half" "$2" "$3" ${4:-} <<<"$BOUND" >"$1.b"
  wait "$other"  # not the server, which runs in the background too
  cat "$1.a" "$1.b" >"$1"; rm -f "$1.a" "$1.b"
}
proofs "$OUT/verify-proofs.txt" GET https://api.example.com/resource --ath
proofs "$OUT/login-proofs.txt" POST "http://$PARTNER/oauth/token"

measure_once() { # label script: one run, no warm-up (a DPoP proof is used once)
  local label=$1 script=$2 f t0 t1
  f="$OUT/wrk-${label// /_}.txt"
  t0=$(cpu_ticks "$SRV")
  wrk -t1 -c"$CONNS" -d"$DUR" --latency -s "$script" "http://$PARTNER" >"$f" 2>&1
  t1=$(cpu_ticks "$SRV")
  summ "$f" "$label -c$CONNS" $((t1 - t0))
}
ms() { # "1.23ms" / "456.00us" / "1.2s" -> milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /s$/ && v !~ /ms$/) n *= 1000; printf "%.2f", n }'
}
p99_of() { awk -v l="$1 " 'index($0, l) == 1 { for (i = 1; i <= NF; i++) if ($i ~ /^p99=/) { sub("p99=", "", $i); print $i } }' "$SUMMARY" | tail -1; }

echo "== load: wrk -t1 -c$CONNS, $DUR, one run each" | tee -a "$SUMMARY"
export METHOD=GET PATH_=/verify HEADERS="Authorization: Bearer $PLAIN" BODY=""
wrk -t1 -c"$CONNS" -d3s -s "$HERE/wrk/static_headers.lua" "http://$PARTNER" >/dev/null 2>&1 || true
measure_once "verify bearer" "$HERE/wrk/static_headers.lua"
MODE=verify TOKEN=$BOUND PROOFS_FILE=$OUT/verify-proofs.txt measure_once "verify dpop" "$HERE/wrk/dpop.lua"
export METHOD=POST PATH_=/oauth/token BODY=grant_type=client_credentials
export HEADERS="Authorization: $BASIC|Content-Type: application/x-www-form-urlencoded"
measure_once "oauth token" "$HERE/wrk/static_headers.lua"
MODE=oauth BASIC=$BASIC PROOFS_FILE=$OUT/login-proofs.txt measure_once "oauth token dpop" "$HERE/wrk/dpop.lua"
echo "== the same at an offered rate: each connection pauses 10 ms between requests" | tee -a "$SUMMARY"
export METHOD=GET PATH_=/verify HEADERS="Authorization: Bearer $PLAIN" BODY="" DELAY_MS=10
measure_once "paced verify bearer" "$HERE/wrk/static_headers.lua"
MODE=verify TOKEN=$BOUND PROOFS_FILE=$OUT/verify-proofs.txt START=300000 \
  measure_once "paced verify dpop" "$HERE/wrk/dpop.lua"
export METHOD=POST PATH_=/oauth/token BODY=grant_type=client_credentials
export HEADERS="Authorization: $BASIC|Content-Type: application/x-www-form-urlencoded"
measure_once "paced oauth token" "$HERE/wrk/static_headers.lua"
MODE=oauth BASIC=$BASIC PROOFS_FILE=$OUT/login-proofs.txt START=300000 \
  measure_once "paced oauth token dpop" "$HERE/wrk/dpop.lua"
unset DELAY_MS
stop
P_VB=$(ms "$(p99_of "paced verify bearer")"); P_VD=$(ms "$(p99_of "paced verify dpop")")
P_OB=$(ms "$(p99_of "paced oauth token -c$CONNS")"); P_OD=$(ms "$(p99_of "paced oauth token dpop")")
V_B=$(ms "$(p99_of "verify bearer")"); V_D=$(ms "$(p99_of "verify dpop")")
O_B=$(ms "$(p99_of "oauth token -c$CONNS")"); O_D=$(ms "$(p99_of "oauth token dpop")")
echo "p99 /verify: bearer ${V_B} ms, dpop ${V_D} ms, difference $(awk -v a="$V_D" -v b="$V_B" 'BEGIN{printf "%.2f", a-b}') ms (target <= 1 ms)" | tee -a "$SUMMARY"
echo "p99 /oauth/token: without proof ${O_B} ms, with ${O_D} ms, difference $(awk -v a="$O_D" -v b="$O_B" 'BEGIN{printf "%.2f", a-b}') ms" | tee -a "$SUMMARY"
echo "paced p99 /verify: bearer ${P_VB} ms, dpop ${P_VD} ms, difference $(awk -v a="$P_VD" -v b="$P_VB" 'BEGIN{printf "%.2f", a-b}') ms (target <= 1 ms)" | tee -a "$SUMMARY"
echo "paced p99 /oauth/token: without proof ${P_OB} ms, with ${P_OD} ms, difference $(awk -v a="$P_OD" -v b="$P_OB" 'BEGIN{printf "%.2f", a-b}') ms" | tee -a "$SUMMARY"
echo "summary: $SUMMARY"
