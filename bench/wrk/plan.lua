-- wrk script for the bench (bench/wrk.py writes the plan and reads the JSON line done() prints).
-- Each line of the plan file is one request: METHOD \t PATH \t BEARER TOKEN \t BODY ('-' for none).
-- Threads take the lines round-robin (thread k: lines k, k+T, k+2T, ...). Every request carries a
-- fresh Idempotency-Key (<prefix>-<thread>-<n>). Arguments after `--`:
--   plan file, key prefix, threads, mode (once|cycle), rate (total req/s; 0 = closed loop),
--   done-file prefix (a thread that has sent its last line of a 'once' plan writes <prefix><k>,
--   so the caller can end the run with SIGINT instead of waiting out -d).
-- Open loop: wrk has no -R, so delay() paces each thread to rate/T on a fixed schedule. A thread
-- whose connections are all busy when a slot comes sends late (coordinated omission): those
-- late starts are counted and their lateness summed, and wrk's latency is from the actual send.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function split(line)
  local out = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(out, field)
  end
  return out
end

function init(args)
  local path, nthreads = args[1], tonumber(args[3])
  prefix = args[2]
  mode = args[4]
  rate = tonumber(args[5]) or 0
  donefile = args[6]
  plan = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      local f = split(line)
      local headers = { ["Content-Type"] = "application/json" }
      if f[3] ~= "" and f[3] ~= "-" then
        headers["Authorization"] = "Bearer " .. f[3]
      end
      local body = f[4]
      if body == "-" or body == "" then
        body = nil
      end
      table.insert(plan, { method = f[1], path = f[2], headers = headers, body = body })
    end
    i = i + 1
  end
  next_i = 1
  sent = 0
  responses = 0
  statuses = {}
  first_us = 0
  last_us = 0
  late = 0
  late_us = 0
  late_max_us = 0
  exhausted = false
  told = false
  verifying = (id == 0)
  reserved = 0
  if rate > 0 then
    interval_us = 1000000 * nthreads / rate
  end
  slot_us = nil
end

local function maybe_done()
  -- every line sent and every answer in: tell the caller once (it ends the run with SIGINT)
  -- (a reserved line may still be waiting for its slot: count against the reservations)
  if exhausted and not told and responses >= math.max(sent, reserved) then
    told = true
    if donefile and donefile ~= "" then
      local f = io.open(donefile .. id, "w")
      if f then
        f:write("done\n")
        f:close()
      end
    end
  end
end

function delay()
  -- wrk asks delay() before each request of a connection: with nothing left to send, the
  -- connection idles until the run ends (no filler request is sent or timed)
  -- each delay() is followed by one request() on the same connection: the line is reserved
  -- here, so that connections waiting for their slots never outnumber the lines left
  if mode ~= "cycle" then
    if reserved >= #plan then
      exhausted = true
      maybe_done()
      return 600000
    end
    reserved = reserved + 1
  end
  if rate <= 0 then
    return 0
  end
  local t = now_us()
  if slot_us == nil then
    slot_us = t
  end
  local wait = slot_us - t
  slot_us = slot_us + interval_us
  if wait < 0 then
    late = late + 1
    late_us = late_us - wait
    if -wait > late_max_us then
      late_max_us = -wait
    end
    return 0
  end
  return math.floor(wait / 1000)
end

function request()
  if verifying then
    -- wrk calls thread 0's request() once before the run to check the request parses: build
    -- the first line's request without sending or counting it
    verifying = false
    if #plan > 0 then
      local r = plan[1]
      return wrk.format(r.method, r.path, r.headers, r.body)
    end
    return wrk.format("GET", "/bench-plan-exhausted", {}, nil)
  end
  if next_i > #plan then
    if mode == "cycle" and #plan > 0 then
      next_i = 1
    else
      exhausted = true
      maybe_done()
      -- nothing left to send: a harmless request no server answers with 2xx, counted apart
      return wrk.format("GET", "/bench-plan-exhausted", {}, nil)
    end
  end
  local r = plan[next_i]
  next_i = next_i + 1
  sent = sent + 1
  if first_us == 0 then
    first_us = now_us()
  end
  local headers = {}
  for k, v in pairs(r.headers) do
    headers[k] = v
  end
  headers["Idempotency-Key"] = prefix .. "-" .. id .. "-" .. sent
  return wrk.format(r.method, r.path, headers, r.body)
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  if status ~= 404 or not exhausted then
    responses = responses + 1
    last_us = now_us()
  end
  maybe_done()
end

function done(summary, latency, requests)
  local first, last, total_sent, total_resp, nlate, late_sum, late_max = nil, 0, 0, 0, 0, 0, 0
  local st = {}
  for _, t in ipairs(threads) do
    local f = t:get("first_us")
    if f and f > 0 and (first == nil or f < first) then
      first = f
    end
    local l = t:get("last_us") or 0
    if l > last then
      last = l
    end
    total_sent = total_sent + (t:get("sent") or 0)
    total_resp = total_resp + (t:get("responses") or 0)
    nlate = nlate + (t:get("late") or 0)
    late_sum = late_sum + (t:get("late_us") or 0)
    local m = t:get("late_max_us") or 0
    if m > late_max then
      late_max = m
    end
    for k, v in pairs(t:get("statuses") or {}) do
      st[k] = (st[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(st) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"sent":%d,"responses":%d,"span_us":%.0f,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},' ..
    '"wrk_requests":%d,"wrk_duration_us":%d,"late":%d,"late_us_sum":%.0f,"late_us_max":%.0f}\n',
    total_sent, total_resp, (first and last > first) and (last - first) or 0,
    table.concat(parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    summary.requests, summary.duration, nlate, late_sum, late_max))
end
