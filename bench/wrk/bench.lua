-- One wrk script for every target (wrk takes a single -s script).
--   BENCH_MODE=get          plain requests (method, headers from -H)
--   BENCH_MODE=sale_unique  POST with a fresh invoice_id per request:
--                           inv_{BENCH_RUN_ID}_{thread}_{counter}, unique across threads and runs
--   BENCH_MODE=sale_replay  POST the same body (BENCH_BODY) every time: the idempotent replay
-- done() prints one line `BENCH_JSON {...}` with counts and latency percentiles (microseconds).

local mode = os.getenv("BENCH_MODE") or "get"
local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())
local customer = os.getenv("BENCH_CUSTOMER") or "bench_cust"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  if mode == "sale_replay" then
    wrk.method = "POST"
    wrk.body = os.getenv("BENCH_BODY")
  end
end

if mode == "sale_unique" then
  request = function()
    counter = counter + 1
    local body = string.format(
      '{"customer_external_id":"%s","amount":1000,"currency":"usd","invoice_id":"inv_%s_%d_%d"}',
      customer, run_id, tid, counter)
    return wrk.format("POST", nil, nil, body)
  end
end

-- The POST targets also record the status and one body of each non-2xx/3xx answer (their
-- rates are low enough that the callback costs nothing measurable; the GET targets skip it).
if mode ~= "get" then
  bad = {}
  bad_body = ""
  response = function(status, headers, body)
    if status < 200 or status >= 400 then
      local k = tostring(status)
      bad[k] = (bad[k] or 0) + 1
      if bad_body == "" and body then bad_body = string.sub(body, 1, 300) end
    end
  end
end

local function json_str(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local statuses, sample = {}, ""
  for _, t in ipairs(threads) do
    local b = t:get("bad")
    if type(b) == "table" then
      for k, v in pairs(b) do statuses[k] = (statuses[k] or 0) + v end
    end
    local body = t:get("bad_body")
    if sample == "" and type(body) == "string" then sample = body end
  end
  local parts = {}
  for k, v in pairs(statuses) do table.insert(parts, string.format('"%s":%d', k, v)) end
  io.write('BENCH_STATUS {"statuses":{' .. table.concat(parts, ",") .. '},"sample":' .. json_str(sample) .. '}\n')
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
