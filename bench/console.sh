#!/usr/bin/env bash
# The admin console's list and search at scale (SPEC §16: ≤ 200 ms each at
# 1,000,000 users), rerunnable with one command:
#   bash bench/console.sh            # env: USERS (1000000), TIMES (20)
# Provisions USERS users through POST /admin/import on a fresh data dir,
# signs in to the console with curl, and times (curl's time_total, from
# the request to the last byte) TIMES requests each of: the first page of
# Partners, a prefix search ("user0500"), a page deep in the list (the
# `Next` of user0500000), and one partner's page. Prints median and max.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
USERS=${USERS:-1000000}; TIMES=${TIMES:-20}
OUT=${OUT:-/tmp/tessera-console-bench}
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
AUTH="Authorization: Bearer $(cat "$DATA/admin.token")"
curl -sf -H "$AUTH" "http://$ADMIN/admin/export" | python3 "$HERE/make_users.py" "$USERS" >"$OUT/snapshot.jsonl"
IMPORT_S=$(curl -sf -o /dev/null -w '%{time_total}' -H "$AUTH" -T "$OUT/snapshot.jsonl" -X POST "http://$ADMIN/admin/import")
rm -f "$OUT/snapshot.jsonl"
echo "import of $USERS users: ${IMPORT_S}s" | tee -a "$SUMMARY"
stop
start

# Sign in as a browser would; the token goes in a file, never argv.
printf 'token=%s' "$(cat "$DATA/admin.token")" >"$OUT/sign-in.form"
curl -sf -o /dev/null -c "$OUT/cookies" -H 'Origin: null' --data-binary @"$OUT/sign-in.form" \
  "http://$ADMIN/console/sign-in"
rm -f "$OUT/sign-in.form"

median() { sort -n | awk '{a[NR]=$1} END{ print a[int((NR+1)/2)] }'; }
time_page() { # label path
  local f="$OUT/times-${1// /_}.txt"; : >"$f"
  for _ in $(seq 1 "$TIMES"); do
    curl -sf -o "$OUT/page.html" -b "$OUT/cookies" -w '%{time_total}\n' "http://$ADMIN$2" \
      | awk '{printf "%.1f\n", $1 * 1000}' >>"$f"
  done
  grep -q '<h1>' "$OUT/page.html" || { echo "no page for $2" >&2; exit 1; }
  printf '%-34s median %6s ms   max %6s ms   (%s requests)\n' "$1" \
    "$(median <"$f")" "$(sort -n "$f" | tail -1)" "$TIMES" | tee -a "$SUMMARY"
}
echo "== console at $USERS users (target: list and search <= 200 ms)" | tee -a "$SUMMARY"
time_page "Partners, first page" "/console/users"
time_page "Partners, search user0500" "/console/users?search=user0500"
time_page "Partners, Next deep in the list" "/console/users?search=&after=user500000"
time_page "a partner's page" "/console/users/user000042"
echo "summary: $SUMMARY"
