-- GET /verify cycling through many distinct tokens (one per line in
-- $TOKENS_FILE), more than the server's verified-signature cache holds.
local reqs = {}
local i = 0
function init(args)
  local f = assert(io.open(os.getenv("TOKENS_FILE"), "r"))
  for line in f:lines() do
    reqs[#reqs + 1] = wrk.format("GET", "/verify", { ["Authorization"] = "Bearer " .. line }, nil)
  end
  f:close()
  -- start each thread at a random offset
  i = math.random(0, #reqs - 1)
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
