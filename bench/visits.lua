-- wrk script for bench/visits.sh: every request comes from one of 10,000 visitors
-- (X-Forwarded-For; the server trusts 127.0.0.1 as a proxy).
local n = 0
request = function()
  n = n + 1
  local i = (n * 7919) % 10000
  local ip = string.format("10.0.%d.%d", math.floor(i / 256), i % 256)
  return wrk.format("GET", "/", { ["X-Forwarded-For"] = ip })
end
