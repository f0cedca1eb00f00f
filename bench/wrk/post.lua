-- Load script for wrk: sends one fixed JSON body with every request and, when the
-- run ends, prints a single machine-readable line that bench/run.py parses.
--
-- The body comes from the file named by BENCH_BODY_FILE rather than from script
-- arguments because wrk only passes arguments to init(), and a body set there
-- would make wrk build every request in Lua; set here, at load time, wrk formats
-- the request once and replays it, which keeps the load generator cheap.

local path = assert(os.getenv("BENCH_BODY_FILE"), "set BENCH_BODY_FILE to the request body file")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

-- Extra headers, one "Name: value" per line in BENCH_HEADERS (a binary tensor's content type
-- and the length of its JSON header, for instance).
for name, value in string.gmatch(os.getenv("BENCH_HEADERS") or "", "([^:\n]+):%s*([^\n]*)\n") do
    wrk.headers[name] = value
end

-- Latencies are in microseconds, as wrk records them; %.0f because percentile()
-- returns a float and Lua's %d wants an integer.
function done(summary, latency, requests)
    local errors = summary.errors
    io.write(string.format(
        "BENCH_RESULT {\"requests\": %.0f, \"duration_us\": %.0f, \"p50_us\": %.0f, "
            .. "\"p90_us\": %.0f, \"p99_us\": %.0f, \"max_us\": %.0f, \"errors_connect\": %.0f, "
            .. "\"errors_read\": %.0f, \"errors_write\": %.0f, \"errors_status\": %.0f, "
            .. "\"errors_timeout\": %.0f}\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, errors.connect, errors.read, errors.write,
        errors.status, errors.timeout
    ))
end
