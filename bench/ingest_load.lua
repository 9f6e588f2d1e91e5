-- wrk script: POST pre-generated gzip envelopes, cycling through body_NNNNN.gz files.
-- Environment: WK_BODIES (dir), WK_COUNT (number of files), WK_PROJECT, WK_KEY.
local dir = os.getenv("WK_BODIES")
local count = tonumber(os.getenv("WK_COUNT"))
local project = os.getenv("WK_PROJECT")
local key = os.getenv("WK_KEY")
local threads = {}
local bodies = {}
local idx, step = 0, 1
ok200 = 0
other = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  -- each thread owns the files tid, tid+nthreads, ... so no body is sent twice until all are used
  local nthreads = tonumber(os.getenv("WK_THREADS"))
  for i = tid, count - 1, nthreads do
    local f = assert(io.open(string.format("%s/body_%05d.gz", dir, i), "rb"))
    table.insert(bodies, f:read("*a"))
    f:close()
  end
  wrk.method = "POST"
  wrk.path = "/api/" .. project .. "/envelope/"
  wrk.headers["X-Sentry-Auth"] = "Sentry sentry_key=" .. key .. ", sentry_version=7"
  wrk.headers["Content-Encoding"] = "gzip"
  wrk.headers["Content-Type"] = "application/x-sentry-envelope"
end

function request()
  idx = idx + 1
  if idx > #bodies then idx = 1 end
  return wrk.format(nil, nil, nil, bodies[idx])
end

function response(status, headers, body)
  if status == 200 then ok200 = ok200 + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local t200, tother = 0, 0
  for _, thread in ipairs(threads) do
    t200 = t200 + thread:get("ok200")
    tother = tother + thread:get("other")
  end
  io.write(string.format("WK_RESULT ok200=%d other=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    t200, tother, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
