-- wrk script: the same 100 EUR order over and over (0.0025 BTC at 40,000 EUR/BTC).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"currency":"EUR","amount":"100"}'
