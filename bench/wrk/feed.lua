-- GET /revocations (a full feed each time) with the feed token from
-- $FEED_TOKEN: what a stranger could not do, and what a misbehaving
-- verifier polling without `since` would.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("FEED_TOKEN") or "")
