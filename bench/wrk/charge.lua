-- POST /v1/me/balance/charges (a wallet charge of 1 won) with a rotating user's access token.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   local users = bench.read_users(os.getenv("BENCH_USERS"))
   reqs = {}
   for i, u in ipairs(users) do
      reqs[i] = wrk.format("POST", "/v1/me/balance/charges", {
         ["Authorization"] = u.auth,
         ["Content-Type"] = "application/json",
      }, '{"amount":1}')
   end
end
