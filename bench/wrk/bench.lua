-- One wrk script for every target (wrk takes a single -s script).
--   BENCH_MODE=get          plain requests (method, headers from -H)
--   BENCH_MODE=click        GETs as from a new visitor each. Refport counts one click per visitor
--                           (address and user agent), link and hour: the same user agent from the
--                           same address every time would be one click, not a click per request.
--                           With BENCH_UA_FILE (one user agent per line: real browsers' most common
--                           ones), request n of thread t comes from its own address
--                           (CF-Connecting-IP, which the local runtime passes on as Cloudflare's edge
--                           sets it: 2001:db8:{BENCH_RUN_ID}:{t}:{n} in IPv6's documentation range)
--                           with the file's user agents in turn, as real visitors share a few
--                           browser strings. Without it: the -H User-Agent plus
--                           " v/{BENCH_RUN_ID}.{t}.{n}" from one address, every user agent new.
--   BENCH_MODE=sale_unique  POST with a fresh invoice_id per request:
--                           inv_{BENCH_RUN_ID}_{thread}_{counter}, unique across threads and runs
--   BENCH_MODE=sale_replay  POST the same body (BENCH_BODY) every time: the idempotent replay
-- Every mode counts the requests it sent (`sent`: wrk's `requests` leaves out those still in
-- flight when it stops, which the server still serves) and the status of every answer.
-- done() prints `BENCH_STATUS {...}` (statuses, sent, one body of a non-2xx/3xx answer) and
-- `BENCH_JSON {...}` with counts and latency percentiles (microseconds).

local mode = os.getenv("BENCH_MODE") or "get"
local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())
local customer = os.getenv("BENCH_CUSTOMER") or "bench_cust"
local threads = {}
local counter = 0
sent = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local prebuilt
function init(args)
  if mode == "sale_replay" then
    wrk.method = "POST"
    wrk.body = os.getenv("BENCH_BODY")
  end
  prebuilt = wrk.format()  -- the same request every time (get, sale_replay): built once
end

local click_headers
local agents
local ua_file = os.getenv("BENCH_UA_FILE")
if mode == "click" and ua_file and ua_file ~= "" then
  agents = {}
  for l in io.lines(ua_file) do
    if l ~= "" then table.insert(agents, l) end
  end
  assert(#agents > 0, "BENCH_UA_FILE has no user agent")
end
-- 2001:db8:rrrr:rrrr:rrrr:tttt:nnnn:nnnn, the run id's 12 hex digits in three groups
local function visitor_ip(n)
  return string.format("2001:db8:%s:%s:%s:%x:%x:%x", run_id:sub(1, 4), run_id:sub(5, 8), run_id:sub(9, 12),
    tid, math.floor(n / 65536) % 65536, n % 65536)
end
if mode == "click" then
  request = function()
    counter = counter + 1
    sent = sent + 1
    if not click_headers then
      click_headers = {}
      for k, v in pairs(wrk.headers) do click_headers[k] = v end
      click_headers["User-Agent"] = click_headers["User-Agent"] or "Mozilla/5.0"
    end
    local h = {}
    for k, v in pairs(click_headers) do h[k] = v end
    if agents then
      h["User-Agent"] = agents[(counter + tid) % #agents + 1]
      h["CF-Connecting-IP"] = visitor_ip(counter)
    else
      h["User-Agent"] = string.format("%s v/%s.%d.%d", click_headers["User-Agent"], run_id, tid, counter)
    end
    return wrk.format(nil, nil, h)
  end
elseif mode == "sale_unique" then
  request = function()
    counter = counter + 1
    sent = sent + 1
    local body = string.format(
      '{"customer_external_id":"%s","amount":1000,"currency":"usd","invoice_id":"inv_%s_%d_%d"}',
      customer, run_id, tid, counter)
    return wrk.format("POST", nil, nil, body)
  end
else
  request = function()
    sent = sent + 1
    return prebuilt
  end
end

-- Every target records the status of each answer and one body of a non-2xx/3xx answer (the
-- same small Lua cost on every target, baselines included, so ratios stay like for like): the
-- redirect's click accounting counts the 302s, not just what wrk saw complete.
statuses = {}
bad_body = ""
response = function(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  if (status < 200 or status >= 400) and bad_body == "" and body then bad_body = string.sub(body, 1, 300) end
end

local function json_str(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local all, sample, total_sent = {}, "", 0
  for _, t in ipairs(threads) do
    local b = t:get("statuses")
    if type(b) == "table" then
      for k, v in pairs(b) do all[k] = (all[k] or 0) + v end
    end
    total_sent = total_sent + (tonumber(t:get("sent")) or 0)
    local body = t:get("bad_body")
    if sample == "" and type(body) == "string" then sample = body end
  end
  local parts = {}
  for k, v in pairs(all) do table.insert(parts, string.format('"%s":%d', k, v)) end
  io.write('BENCH_STATUS {"statuses":{' .. table.concat(parts, ",") .. '},"sent":' .. total_sent ..
    ',"sample":' .. json_str(sample) .. '}\n')
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
