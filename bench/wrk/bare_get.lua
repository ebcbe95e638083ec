-- GET /bare on the bare FastAPI app (bench/bare_fastapi_app.py).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   req = wrk.format("GET", "/bare")
end

function request()
   bench.sent()
   return req
end

function response(status, headers, body)
   bench.count(status)
end
