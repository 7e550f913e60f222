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
