-- Requests that each carry a fresh DPoP proof: one per line of
-- $PROOFS_FILE (bench/dpop_proofs.py), used once each (a proof is
-- accepted once: the file must hold more than the run sends).
-- $MODE "verify": GET /verify with Authorization: DPoP $TOKEN and the
-- original request in X-Forwarded-*; "oauth": POST /oauth/token with the
-- Basic header $BASIC. $START skips that many proofs (used by a run
-- before); $COUNT keeps at most that many after them.
local reqs = {}
local i = 0
function init(args)
  local mode, token, basic = os.getenv("MODE"), os.getenv("TOKEN"), os.getenv("BASIC")
  local skip = tonumber(os.getenv("START") or "0")
  local count = tonumber(os.getenv("COUNT") or "1e12")
  for line in io.lines(os.getenv("PROOFS_FILE")) do
    if #reqs >= count then
      break
    elseif skip > 0 then
      skip = skip - 1
    elseif mode == "verify" then
      reqs[#reqs + 1] = wrk.format("GET", "/verify", {
        ["Authorization"] = "DPoP " .. token,
        ["DPoP"] = line,
        ["X-Forwarded-Method"] = "GET",
        ["X-Forwarded-Proto"] = "https",
        ["X-Forwarded-Host"] = "api.example.com",
        ["X-Forwarded-Uri"] = "/resource",
      }, nil)
    else
      reqs[#reqs + 1] = wrk.format("POST", "/oauth/token", {
        ["Authorization"] = basic,
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["DPoP"] = line,
      }, "grant_type=client_credentials")
    end
  end
end
function request()
  i = i + 1
  return reqs[i] or reqs[#reqs]
end

-- $DELAY_MS: an offered rate instead of a saturating one (pace.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "pace.lua")
