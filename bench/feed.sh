#!/usr/bin/env bash
# The revocation feed at scale, rerunnable with one command:
#   bash bench/feed.sh        # env: USERS=1000000 DUR=10s CONNS=64 FEED_CONNS=4
# Provisions USERS users through POST /admin/import, 1,000 of them disabled
# just now and 10,000 revoked tokens (so the full feed has what a busy
# deployment's has), then:
#   - times the first full feed (built) and 20 more (served from the cache)
#     with curl, and reports its size;
#   - measures logins alone (wrk, random users), then logins while
#     FEED_CONNS connections fetch the full feed in a loop (a second wrk),
#     and prints the ratio and both p99s.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
USERS=${USERS:-1000000}; DUR=${DUR:-10s}; CONNS=${CONNS:-64}; FEED_CONNS=${FEED_CONNS:-4}
OUT=${OUT:-/tmp/tessera-feed}
rm -rf "$OUT"; mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
. "$HERE/lib.sh"
need_tools

echo "== building release"
(cd "$ROOT" && cargo build --release -q)
BIN=$ROOT/target/release/tessera
DATA=$OUT/data

echo "== provisioning $USERS users (1,000 disabled) and 10,000 revocations"
start
AUTH="Authorization: Bearer $(cat "$DATA/admin.token")"
curl -sf -H "$AUTH" "http://$ADMIN/admin/export" \
  | RESTRICTED=1000 REVOKED=10000 python3 "$HERE/make_users.py" "$USERS" >"$OUT/snapshot.jsonl"
IMPORT_S=$(curl -sf -o /dev/null -w '%{time_total}' -H "$AUTH" -T "$OUT/snapshot.jsonl" -X POST "http://$ADMIN/admin/import")
echo "import of $USERS users: ${IMPORT_S}s" | tee -a "$SUMMARY"
rm -f "$OUT/snapshot.jsonl"
stop
start
export FEED_TOKEN; FEED_TOKEN=$(cat "$DATA/feed.token")
# The token goes to curl in a 0600 header file, never on its command line.
(umask 077; printf 'Authorization: Bearer %s\n' "$FEED_TOKEN" >"$OUT/feed-auth.header")
FEED="http://$PARTNER/revocations"
first=$(curl -sf -o "$OUT/feed.jwt" -w '%{time_total}' -H @"$OUT/feed-auth.header" "$FEED")
echo "full feed, first (built): ${first}s, $(wc -c <"$OUT/feed.jwt") bytes" | tee -a "$SUMMARY"
: >"$OUT/cached.txt"
for _ in $(seq 1 20); do
  curl -sf -o /dev/null -w '%{time_total}\n' -H @"$OUT/feed-auth.header" "$FEED" >>"$OUT/cached.txt"
done
echo "full feed, cached (20 fetches, s): median $(sort -n "$OUT/cached.txt" | sed -n 10p), max $(sort -n "$OUT/cached.txt" | tail -1)" | tee -a "$SUMMARY"
echo "stranger without the feed token: HTTP $(curl -s -o /dev/null -w '%{http_code}' "$FEED")" | tee -a "$SUMMARY"

USERS=$USERS measure "logins alone" "$CONNS" -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
wrk -t1 -c"$FEED_CONNS" -d"$(( ${DUR%s} + 6 ))s" -s "$HERE/wrk/feed.lua" "$FEED" >"$OUT/wrk-feed-loop.txt" 2>&1 &
LOOP=$!
sleep 1
USERS=$USERS measure "logins with $FEED_CONNS feed loops" "$CONNS" -s "$HERE/wrk/gentoken.lua" "http://$PARTNER/generateToken"
wait "$LOOP" || true
echo "feed loop: $(awk '/Requests\/sec/{print $2}' "$OUT/wrk-feed-loop.txt") full feeds/s" | tee -a "$SUMMARY"
stop
alone=$(rps_of "logins alone" "$SUMMARY"); loaded=$(rps_of "logins with" "$SUMMARY")
echo "logins with the feed loops / alone: $(awk -v a="$alone" -v b="$loaded" 'BEGIN{printf "%.2f", b/a}')x" | tee -a "$SUMMARY"
echo "summary: $SUMMARY"
