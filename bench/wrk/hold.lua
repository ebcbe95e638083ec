-- POST /v1/reservations: each request holds one seat nobody has asked for yet (seat number
-- BENCH_OFFSET + k across the ranges of BENCH_SEATS), with a rotating user. The seat id of
-- every 201 answer is collected and written to BENCH_OUT by done(), so http_bench.py can
-- compare them with the seats the server holds.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local body_format = '{"schedule_id":%d,"seat_ids":[%d]}'

function init(args)
   users = bench.read_users(os.getenv("BENCH_USERS"))
   ranges = bench.read_ranges(os.getenv("BENCH_SEATS"))
   offset = tonumber(os.getenv("BENCH_OFFSET"))
   headers = {}
   for i, u in ipairs(users) do
      headers[i] = {
         ["Authorization"] = u.auth,
         ["X-Queue-Token"] = u.queue,
         ["Content-Type"] = "application/json",
      }
   end
   held = {}
end

function request()
   local k = sent
   bench.sent()
   local schedule, seat = bench.seat(ranges, offset + k)
   return wrk.format("POST", "/v1/reservations", headers[k % #headers + 1],
                     body_format:format(schedule, seat))
end

function response(status, headers, body)
   bench.count(status)
   if status == 201 then
      held[#held + 1] = tonumber(body:match('"seats":%[(%d+)%]'))
   end
end

local done_stats = done
function done(summary, latency, requests)
   local path = os.getenv("BENCH_OUT")
   local seats = bench.thread_get("held") or {}
   local f = assert(io.open(path, "w"))
   for _, seat in ipairs(seats) do
      f:write(seat, "\n")
   end
   f:close()
   done_stats(summary, latency, requests)
end
