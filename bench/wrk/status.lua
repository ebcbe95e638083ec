-- GET /v1/concerts/{id}/queue (a queue poll) with a rotating user and their queue token.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   local users = bench.read_users(os.getenv("BENCH_USERS"))
   local path = "/v1/concerts/" .. os.getenv("BENCH_CONCERT") .. "/queue"
   reqs = {}
   for i, u in ipairs(users) do
      reqs[i] = wrk.format("GET", path, {["Authorization"] = u.auth, ["X-Queue-Token"] = u.queue})
   end
end
