-- POST /generateToken for random users among the 100k that bench/run.sh
-- provisions (user000000..user099999, password 00000000-0000-4000-8000-NNNNNNNNNNNN).
-- 1000 requests are pre-built so wrk spends no per-request Lua time.
local n = tonumber(os.getenv("USERS") or "100000")
local reqs = {}
local i = 0
function init(args)
  math.randomseed(os.time() + math.random(1, 1e6))
  for k = 1, 1000 do
    local u = math.random(0, n - 1)
    local path = string.format("/generateToken?username=user%06d&password=00000000-0000-4000-8000-%012d", u, u)
    reqs[k] = wrk.format("POST", path, nil, "")
  end
end
function request()
  i = i % 1000 + 1
  return reqs[i]
end
