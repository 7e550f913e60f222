#!/usr/bin/env bash
# Cluster mode (SPEC §9) against the embedded default, rerunnable:
#   bash bench/cluster.sh            (DUR=10s CONNS=64 USERS=10000 TRIALS=100)
# On a throwaway PostgreSQL (scripts/pg.sh) and one machine:
#   1. POST /generateToken on a redb node, then on a PostgreSQL node
#      (same users, same wrk), and the ratio;
#   2. two PostgreSQL nodes each pinned to one core, loaded together,
#      against one node pinned to one core;
#   3. how long a revocation acknowledged by node A takes to be enforced by
#      node B (/verify 401), over TRIALS trials: median and max.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DUR=${DUR:-10s}; CONNS=${CONNS:-64}; USERS=${USERS:-10000}; TRIALS=${TRIALS:-100}
OUT=${OUT:-/tmp/tessera-bench-cluster}
rm -rf "$OUT"; mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
. "$HERE/lib.sh"
need_tools
(cd "$ROOT" && cargo build --release -q)
BIN=$ROOT/target/release/tessera
PG_DIR=/tmp/tessera-pg-bench-$$
URL=$(bash "$ROOT/scripts/pg.sh" start "$PG_DIR" $$)
(umask 077; echo "token-for-the-cluster-bench-0123456789" >"$OUT/admin.token")
NODES=()
node() { # name taskset-cpus -> starts a PostgreSQL node; sets NP (partner) and NA (admin)
  local log=$OUT/$1.log
  taskset -c "$2" "$BIN" serve --database "$URL" --admin-token-file "$OUT/admin.token" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --throttle-failures 1000000 2>"$log" &
  NODES+=($!)
  for _ in $(seq 1 500); do grep -q 'listening admin=' "$log" 2>/dev/null && break; sleep 0.01; done
  NP=$(grep -o 'listening partner=[0-9.:]*' "$log" | cut -d= -f2)
  NA=$(grep -o 'listening admin=[0-9.:]*' "$log" | cut -d= -f2)
}
cleanup() { for p in "${NODES[@]:-}"; do kill "$p" 2>/dev/null || true; done; stop; bash "$ROOT/scripts/pg.sh" kill "$PG_DIR" || true; }
trap cleanup EXIT
AUTH="Authorization: Bearer token-for-the-cluster-bench-0123456789"
rps() { awk '/Requests\/sec/{print $2}' "$1"; }
load() { # file url
  wrk -t1 -c"$CONNS" -d3s -s "$HERE/wrk/gentoken.lua" "$2" >/dev/null 2>&1 || true
  USERS=$USERS wrk -t1 -c"$CONNS" -d"$DUR" --latency -s "$HERE/wrk/gentoken.lua" "$2" >"$1" 2>&1
}

echo "== redb node"
DATA=$OUT/data
start
RA="Authorization: Bearer $(cat "$DATA/admin.token")"
curl -sf -H "$RA" "http://$ADMIN/admin/export" | python3 "$HERE/make_users.py" "$USERS" >"$OUT/snapshot.jsonl"
curl -sf -o /dev/null -H "$RA" --data-binary @"$OUT/snapshot.jsonl" "http://$ADMIN/admin/import"
load "$OUT/redb.txt" "http://$PARTNER/generateToken"
stop
REDB=$(rps "$OUT/redb.txt")

echo "== PostgreSQL node"
node one 0-1; P1=$NP; A1=$NA
curl -sf -o /dev/null -H "$AUTH" --data-binary @"$OUT/snapshot.jsonl" "http://$A1/admin/import"
load "$OUT/pg.txt" "http://$P1/generateToken"
PG=$(rps "$OUT/pg.txt")
kill "${NODES[0]}"; wait "${NODES[0]}" 2>/dev/null || true; NODES=()

echo "== one node on one core, then two nodes on one core each"
node one 0; P1=$NP; A1=$NA
load "$OUT/one.txt" "http://$P1/generateToken"
node two 1; P2=$NP
load "$OUT/two-a.txt" "http://$P1/generateToken" & L1=$!
load "$OUT/two-b.txt" "http://$P2/generateToken"
wait $L1
ONE=$(rps "$OUT/one.txt"); TWO=$(awk -v a="$(rps "$OUT/two-a.txt")" -v b="$(rps "$OUT/two-b.txt")" 'BEGIN{printf "%.0f", a+b}')

echo "== revocation propagation A -> B, $TRIALS trials"
python3 - "$P1" "$A1" "$P2" "$TRIALS" >"$OUT/propagation.txt" <<'PY'
import http.client, json, statistics, sys, time
p1, a1, p2, trials = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def call(addr, method, path, body=None, headers=None):
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=5)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data
auth = {"Authorization": "Bearer token-for-the-cluster-bench-0123456789", "Content-Type": "application/json"}
delays = []
for i in range(trials):
    u = i % 1000
    _, tok = call(p1, "POST", f"/generateToken?username=user{u:06d}&password=00000000-0000-4000-8000-{u:012d}")
    tok = tok.decode()
    assert call(p2, "GET", "/verify", headers={"Authorization": "Bearer " + tok})[0] == 200
    status, _ = call(a1, "POST", "/admin/revocations", json.dumps({"token": tok}), auth)
    assert status == 201
    acked = time.perf_counter()
    while call(p2, "GET", "/verify", headers={"Authorization": "Bearer " + tok})[0] != 401:
        pass
    delays.append((time.perf_counter() - acked) * 1000)
print(f"revocation on A enforced by B after median {statistics.median(delays):.1f} ms, "
      f"max {max(delays):.1f} ms over {trials} trials (target <= 1000 ms)")
PY
{
  echo "== cluster mode, $(date -u +%F), USERS=$USERS wrk -t1 -c$CONNS -d$DUR"
  echo "generateToken redb node          $REDB req/s"
  echo "generateToken PostgreSQL node    $PG req/s   ratio $(awk -v a="$PG" -v b="$REDB" 'BEGIN{printf "%.2f", a/b}') (target >= 0.7)"
  echo "one node on one core             $ONE req/s"
  echo "two nodes, one core each         $TWO req/s   ratio $(awk -v a="$TWO" -v b="$ONE" 'BEGIN{printf "%.2f", a/b}') (both wrk clients share the same 2 cores)"
  cat "$OUT/propagation.txt"
} | tee -a "$SUMMARY"
