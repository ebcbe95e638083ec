-- GET /v1/schedules/{id}/seats?limit=BENCH_LIMIT (one page of the first schedule's seat list)
-- with a rotating user and their queue token.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   local users = bench.read_users(os.getenv("BENCH_USERS"))
   local ranges = bench.read_ranges(os.getenv("BENCH_SEATS"))
   local path = "/v1/schedules/" .. ranges[1].schedule .. "/seats?limit=" .. os.getenv("BENCH_LIMIT")
   reqs = {}
   for i, u in ipairs(users) do
      reqs[i] = wrk.format("GET", path, {["Authorization"] = u.auth, ["X-Queue-Token"] = u.queue})
   end
end
