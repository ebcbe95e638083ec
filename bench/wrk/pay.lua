-- POST /v1/payments: request k pays user k's reservation (held in setup) with user k's queue
-- token, for the first BENCH_LIMIT users; the run stops once BENCH_LIMIT answers have come.
-- Requests sent after the BENCH_LIMIT-th (while the last answers are in flight) repeat an
-- earlier payment, which the server refuses without changing anything (the token has
-- completed); they are counted as non-2xx if answered before the stop. Reaching the limit
-- creates the file BENCH_DONE, for http_bench.py to end wrk (SIGINT).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   local users = bench.read_users(os.getenv("BENCH_USERS"))
   limit = math.min(tonumber(os.getenv("BENCH_LIMIT")), #users)
   reqs = {}
   for i = 1, limit do
      local u = users[i]
      reqs[i] = wrk.format("POST", "/v1/payments", {
         ["Authorization"] = u.auth,
         ["X-Queue-Token"] = u.queue,
         ["Content-Type"] = "application/json",
      }, string.format('{"reservation_id":%d}', u.reservation))
   end
end

function request()
   bench.sent()
   return reqs[(sent - 1) % limit + 1]
end

function response(status, headers, body)
   bench.count(status)
   if received == limit then
      wrk.thread:stop()
      local f = io.open(os.getenv("BENCH_DONE"), "w")
      if f then
         f:close()
      end
   end
end
