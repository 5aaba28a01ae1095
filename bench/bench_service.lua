-- wrk's script for bench_service.sh: POST /v1/verify with the lines of a
-- file, ITEMS a request, each line sent once (first sightings), then stops.
-- Arguments (after wrk's --): FILE ITEMS [FIRST line, default 1]
-- [COUNT lines, default 0: all]
-- With one wrk thread (-t1): its connections share this state. Once every
-- line is sent, a connection still asking gets GET /v1/health (a few, while
-- the last batches are answered); the last verify answer stops wrk (SIGINT
-- to its main thread, as ^C: wrk then reports). done() prints one line for
-- the script: items, good, errors, seconds (first request to last verify
-- answer), and the latency percentiles of all requests in ms.
local ffi = require("ffi")
ffi.cdef [[
  struct mk_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clk, struct mk_timespec *ts);
  int kill(int pid, int sig);
  int getpid(void);
]]

local function now()
  local ts = ffi.new("struct mk_timespec")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local function esc(s)
  return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

local reqs = {}
local nexti, answered = 1, 0
local health
-- globals: what done() reads through thread:get
items, good, errors = 0, 0, 0
t_first, t_last = nil, nil

function init(args)
  local file, per = args[1], tonumber(args[2])
  local first, count = tonumber(args[3] or "1"), tonumber(args[4] or "0")
  local lines = {}
  local i = 0
  for line in io.lines(file) do
    i = i + 1
    if i >= first and (count == 0 or #lines < count) then lines[#lines + 1] = line end
  end
  local headers = { ["Content-Type"] = "application/json" }
  for b = 1, #lines, per do
    local parts = {}
    for j = b, math.min(b + per - 1, #lines) do
      parts[#parts + 1] = string.format('{"reference":"%d","text":"%s"}', j, esc(lines[j]))
    end
    reqs[#reqs + 1] = wrk.format("POST", "/v1/verify", headers, '{"items":[' .. table.concat(parts, ",") .. ']}')
  end
  health = wrk.format("GET", "/v1/health", {}, nil)
end

-- wrk calls request() once before the run, in the first thread, to check
-- it (script_verify_request): that call sends nothing, so it takes no line.
local checked = false
function request()
  if not checked then
    checked = true
    return reqs[1] or health
  end
  if t_first == nil then t_first = now() end
  if nexti <= #reqs then
    nexti = nexti + 1
    return reqs[nexti - 1]
  end
  return health
end

function response(status, headers, body)
  if status == 200 and body:find('^{"status":"ready"') then return end -- a filler
  local g, c = string.match(body:sub(-64), '"good":(%d+),"count":(%d+)}$')
  answered = answered + 1
  if c == nil or (status ~= 200 and status ~= 207) then
    errors = errors + 1
  else
    items = items + tonumber(c)
    good = good + tonumber(g)
  end
  t_last = now()
  if answered == #reqs then
    ffi.C.kill(ffi.C.getpid(), 2)
    wrk.thread:stop()
  end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local tf, tl = t:get("t_first"), t:get("t_last")
    io.write(string.format("RESULT items %d good %d errors %d seconds %.4f p50 %.3f p90 %.3f p99 %.3f max %.3f requests %d\n",
      t:get("items"), t:get("good"), t:get("errors") + summary.errors.connect + summary.errors.read + summary.errors.write +
        summary.errors.status + summary.errors.timeout,
      (tf and tl) and (tl - tf) or 0, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
      latency:percentile(99) / 1e3, latency.max / 1e3, summary.requests))
  end
end
