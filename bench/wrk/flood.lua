-- The hostile flood of SPEC §5: POST /generateToken with non-UUID guesses
-- for unknown users, so every request asks for an Argon2id check.
-- 1000 requests are pre-built so wrk spends no per-request Lua time.
local reqs = {}
local i = 0
function init(args)
  for k = 1, 1000 do
    local path = string.format("/generateToken?username=stranger%04d&password=guess-%d", k, k)
    reqs[k] = wrk.format("POST", path, nil, "")
  end
end
function request()
  i = i % 1000 + 1
  return reqs[i]
end
