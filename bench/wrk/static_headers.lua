-- One request, repeated: $METHOD $PATH with the headers of $HEADERS
-- ("Name: value" pairs separated by "|") and the body $BODY.
local req
function init(args)
  local headers = {}
  for pair in string.gmatch(os.getenv("HEADERS") or "", "[^|]+") do
    local name, value = string.match(pair, "^%s*([^:]+):%s*(.*)$")
    headers[name] = value
  end
  req = wrk.format(os.getenv("METHOD"), os.getenv("PATH_"), headers, os.getenv("BODY"))
end
function request()
  return req
end

-- $DELAY_MS: each connection waits on average this long between its
-- requests, a random wait (exponential, so arrivals are Poisson as from
-- independent partners, not 64 connections firing in step), so the load is
-- an offered rate (64 connections, 10 ms: ~6,400 req/s) and the latency is
-- the service's, not the queue of a saturated host or of a burst.
local pause = tonumber(os.getenv("DELAY_MS") or "")
if pause then
  math.randomseed(os.time())
  function delay()
    return math.floor(-pause * math.log(1 - math.random()))
  end
end
