-- PATCH /admin/users/user0000NN {"note": …}: an admin mutation (fsync'd
-- commit with its audit event) under load. ADMIN_TOKEN comes from the env.
local token = os.getenv("ADMIN_TOKEN")
local reqs = {}
local i = 0
function init(args)
  for k = 1, 100 do
    local path = string.format("/admin/users/user%06d", k)
    local body = string.format('{"note":"bench %d"}', k)
    reqs[k] = wrk.format("PATCH", path, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, body)
  end
end
function request()
  i = i % 100 + 1
  return reqs[i]
end
