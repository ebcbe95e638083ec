-- POST /bare on the bare FastAPI app: a hold-shaped body with a new seat id each time, built
-- like hold.lua builds its requests (so the load generator does the same work).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local body_format = '{"schedule_id":%d,"seat_ids":[%d]}'

function init(args)
   headers = {["Content-Type"] = "application/json"}
end

function request()
   local k = sent
   bench.sent()
   return wrk.format("POST", "/bare", headers, body_format:format(1, 1 + k))
end

function response(status, headers, body)
   bench.count(status)
end
