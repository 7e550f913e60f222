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

-- $DELAY_MS: an offered rate instead of a saturating one (pace.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "pace.lua")
