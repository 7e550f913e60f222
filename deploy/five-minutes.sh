#!/usr/bin/env bash
# Five minutes with Tessera: run it, provision a partner, and follow one
# token from issue to revocation, with nothing but the CLI and curl.
set -euo pipefail
cd "$(mktemp -d)"

# 1. Start the server: partner API on :8080, admin API on :8081, data in ./data.
tessera serve &
until curl -sf http://localhost:8080/readyz >/dev/null; do sleep 0.1; done

# 2. Add a partner user. The CLI finds the running server through
#    data/admin.url; the generated password is printed once.
PASSWORD=$(tessera user add channel_user --note "calendar sync" | sed -n 's/^password: //p')
tessera user list

# 3. The partner gets a token: the seed contract's request, verbatim.
TOKEN=$(curl -s -X POST "http://localhost:8080/generateToken?username=channel_user&password=$PASSWORD")

# 4. Check it: what /verify tells a partner's service (exit 0: valid).
tessera token check "$TOKEN"

# 5. Revoke it; the check now fails and says why (exit 1).
tessera token revoke "$TOKEN"
if tessera token check "$TOKEN"; then exit 1; fi

# 6. Back everything up (users with hashes, keys, revocations), then stop.
tessera export -o backup.jsonl
tessera audit
kill %1 && wait
