-- Shared by the wrk scripts of bench/http_bench.py (loaded with dofile by each of them).
--
-- Parameters come from environment variables set by http_bench.py:
--   BENCH_USERS   file with one user per line: "user_id access_jwt queue_jwt reservation_id"
--   BENCH_CONCERT the concert id (queue status)
--   BENCH_SEATS   seat ranges "schedule_id:first_seat_id:count,..." (holds, seat list)
--   BENCH_OFFSET  index of the first seat this run holds (across the ranges, in order)
--   BENCH_LIMIT   seat list page size; pay: how many reservations to pay
--   BENCH_OUT     hold: file that receives the seat id of every 201 answer
--   BENCH_DONE    pay: file created once BENCH_LIMIT answers have come (http_bench.py then
--                 stops wrk with SIGINT: wrk's main thread otherwise sleeps out -d)
--
-- One wrk thread is used, so the request counter is global to the run: request k goes to user
-- k mod N, so consecutive requests (and so the C connections) use different users.
-- done() prints one line "BENCH_JSON {...}" that http_bench.py parses; besides wrk's numbers it
-- has elapsed_us, the time from the first request sent to the last answer received
-- (CLOCK_MONOTONIC through LuaJIT's ffi), which stays right when a run stops early.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")

bench = {}

function bench.now_us()
   ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
   return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

function bench.read_users(path)
   local users = {}
   for line in io.lines(path) do
      local uid, access, queue, res = line:match("^(%d+) (%S+) (%S+) (%d+)$")
      if uid then
         users[#users + 1] = {
            id = tonumber(uid),
            auth = "Bearer " .. access,
            queue = queue,
            reservation = tonumber(res),
         }
      end
   end
   assert(#users > 0, "no users in " .. path)
   return users
end

function bench.read_ranges(spec)
   local ranges = {}
   for sid, first, count in spec:gmatch("(%d+):(%d+):(%d+)") do
      ranges[#ranges + 1] = {schedule = tonumber(sid), first = tonumber(first), count = tonumber(count)}
   end
   return ranges
end

-- The k-th seat (0-based) across the ranges: schedule id, seat id.
function bench.seat(ranges, k)
   for _, r in ipairs(ranges) do
      if k < r.count then
         return r.schedule, r.first + k
      end
      k = k - r.count
   end
   error("out of seats")
end

local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

-- A global of the (single) thread's environment, read from done().
function bench.thread_get(name)
   return threads[1]:get(name)
end

-- Counters kept in the thread's environment and read back by done().
sent = 0
received = 0
statuses = {}
first_us = 0
last_us = 0

-- Called by request() for each request sent.
function bench.sent()
   if sent == 0 then
      first_us = bench.now_us()
   end
   sent = sent + 1
end

-- Called by response() for each answer.
function bench.count(status)
   received = received + 1
   statuses[status] = (statuses[status] or 0) + 1
   last_us = bench.now_us()
end

-- The default request() and response(): send the prepared `reqs` in turn (one per user,
-- built by the script's init()) and count the statuses. Scripts that need more define their own.
function request()
   bench.sent()
   return reqs[(sent - 1) % #reqs + 1]
end

function response(status, headers, body)
   bench.count(status)
end

function done(summary, latency, requests)
   local t = threads[1]
   local parts = {}
   for status, n in pairs(t:get("statuses") or {}) do
      parts[#parts + 1] = string.format('"%d": %d', status, n)
   end
   local e = summary.errors
   print(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "elapsed_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
         .. '"max_us": %d, "mean_us": %.1f, "sent": %d, "received": %d, "statuses": {%s}, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}',
      summary.requests, summary.duration,
      (t:get("last_us") or 0) - (t:get("first_us") or 0), latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean, t:get("sent") or 0,
      t:get("received") or 0, table.concat(parts, ", "), e.connect, e.read, e.write, e.status,
      e.timeout))
end
