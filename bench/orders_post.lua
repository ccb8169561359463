-- wrk script: POST /orders with a different amount each time (EUR, 2 decimals).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"currency":"EUR","amount":"%d.%02d"}', 1 + (n % 997), n % 100)
  return wrk.format(nil, "/orders", nil, body)
end
