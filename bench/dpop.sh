#!/usr/bin/env bash
# DPoP's cost (SPEC §17), rerunnable with one command:  bash bench/dpop.sh
# Starts Tessera on a fresh data dir with one partner, then with wrk -t1
# -c64 over loopback (each DPoP request with a fresh proof from
# bench/dpop_proofs.py, made beforehand):
#   - GET /verify: a bearer token vs a DPoP-bound one with its proof
#   - POST /oauth/token: without a proof vs with one
# and prints req/s, p50, p99 and the p99 differences (target: /verify
# with DPoP ≤ 1 ms more at p99), saturated (each connection sends as soon
# as it is answered: the difference is then the queue of a CPU-bound host,
# since each proof costs one more signature check) and at offered rates
# (each connection pauses a random time, mean 40, 20 and 10 ms: Poisson
# arrivals of ~1,600, ~3,200 and ~6,400 req/s). The server runs with
# --clock-leeway 10m so proofs made before the run stay fresh through it.
# Env: DUR (10s), CONNS (64), PROOFS (600000), PAUSES ("40 20 10"),
# OUT (/tmp/tessera-dpop-bench).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DUR=${DUR:-10s}; CONNS=${CONNS:-64}; PROOFS=${PROOFS:-600000}; PAUSES=${PAUSES:-40 20 10}
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
MODE=verify TOKEN=$BOUND PROOFS_FILE=$OUT/verify-proofs.txt COUNT=300000 measure_once "verify dpop" "$HERE/wrk/dpop.lua"
export METHOD=POST PATH_=/oauth/token BODY=grant_type=client_credentials
export HEADERS="Authorization: $BASIC|Content-Type: application/x-www-form-urlencoded"
measure_once "oauth token" "$HERE/wrk/static_headers.lua"
MODE=oauth BASIC=$BASIC PROOFS_FILE=$OUT/login-proofs.txt COUNT=300000 measure_once "oauth token dpop" "$HERE/wrk/dpop.lua"
echo "== at offered rates: each connection pauses a random time (mean $PAUSES ms) between requests" | tee -a "$SUMMARY"
start=300000
for pause in $PAUSES; do
  export METHOD=GET PATH_=/verify HEADERS="Authorization: Bearer $PLAIN" BODY="" DELAY_MS=$pause
  measure_once "paced$pause verify bearer" "$HERE/wrk/static_headers.lua"
  MODE=verify TOKEN=$BOUND PROOFS_FILE=$OUT/verify-proofs.txt START=$start COUNT=80000 \
    measure_once "paced$pause verify dpop" "$HERE/wrk/dpop.lua"
  start=$((start + 80000))
done
export METHOD=POST PATH_=/oauth/token BODY=grant_type=client_credentials DELAY_MS=10
export HEADERS="Authorization: $BASIC|Content-Type: application/x-www-form-urlencoded"
measure_once "paced10 oauth token" "$HERE/wrk/static_headers.lua"
MODE=oauth BASIC=$BASIC PROOFS_FILE=$OUT/login-proofs.txt START=300000 COUNT=80000 \
  measure_once "paced10 oauth token dpop" "$HERE/wrk/dpop.lua"
unset DELAY_MS
stop
diff_line() { # label bearer-label dpop-label [target]
  local b d; b=$(ms "$(p99_of "$2")"); d=$(ms "$(p99_of "$3")")
  echo "$1: p99 ${b} ms without, ${d} ms with DPoP, difference $(awk -v a="$d" -v b="$b" 'BEGIN{printf "%.2f", a-b}') ms${4:-}" | tee -a "$SUMMARY"
}
diff_line "saturated /verify" "verify bearer -c$CONNS" "verify dpop -c$CONNS"
diff_line "saturated /oauth/token" "oauth token -c$CONNS" "oauth token dpop -c$CONNS"
for pause in $PAUSES; do
  diff_line "offered (pause $pause ms) /verify" "paced$pause verify bearer -c$CONNS" "paced$pause verify dpop -c$CONNS" " (target <= 1 ms)"
done
diff_line "offered (pause 10 ms) /oauth/token" "paced10 oauth token -c$CONNS" "paced10 oauth token dpop -c$CONNS"
echo "summary: $SUMMARY"
