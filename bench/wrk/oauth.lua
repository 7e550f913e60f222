-- POST /oauth/token, client_credentials with HTTP Basic for random users.
-- The Basic header values come from $HEADERS_FILE (bench/basic_headers.py),
-- 1000 requests pre-built so wrk spends no per-request Lua time.
local reqs = {}
local i = 0
function init(args)
  local k = 0
  for line in io.lines(os.getenv("HEADERS_FILE")) do
    k = k + 1
    reqs[k] = wrk.format("POST", "/oauth/token", {
      ["Authorization"] = line,
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, "grant_type=client_credentials")
    if k == 1000 then break end
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
