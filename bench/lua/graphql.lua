-- wrk script for one GraphQL case: POST the JSON body in the file named by the
-- environment variable BENCH_BODY_FILE (bench/run.sh builds it at run time from the
-- .graphql documents, so the fixtures stay the single source of each query).
--
-- Every response is checked: a status outside 2xx counts as non-2xx; a 2xx response
-- whose body has an "errors" member counts as a GraphQL error. done() prints one line
--   BENCH_RESULT {json}
-- with requests/s, latency percentiles (microseconds) and those counters, which
-- bench/run.sh parses (wrk's own text report is kept beside it for reference).

-- With BENCH_METHOD=GET the URL given to wrk is fetched as it is (persisted queries,
-- static files) and no body file is needed.
if os.getenv("BENCH_METHOD") == "GET" then
  wrk.method = "GET"
  wrk.headers["Accept"] = "application/json"
else
  local body_file = os.getenv("BENCH_BODY_FILE")
  if body_file == nil or body_file == "" then
    error("BENCH_BODY_FILE is not set")
  end
  local f = assert(io.open(body_file, "rb"))
  local body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
  wrk.body = body
end

-- Optional, for bench/ratelimit.sh:
--   BENCH_AUTH=<key>        sends `Authorization: Bearer <key>` (the admin API).
--   BENCH_BODY_FILE2=<file> alternates between the two bodies, request by request.
--   BENCH_XFF_POOL=<n>      sends `X-Forwarded-For` from n distinct buyer addresses
--                           (10.x.y.z), spreading requests over them in turn.
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end
local bodies = nil
local body_file2 = os.getenv("BENCH_BODY_FILE2")
if body_file2 ~= nil and body_file2 ~= "" then
  local f2 = assert(io.open(body_file2, "rb"))
  bodies = { wrk.body, f2:read("*a") }
  f2:close()
end
local xff_pool = tonumber(os.getenv("BENCH_XFF_POOL") or "")
if bodies ~= nil or xff_pool ~= nil then
  local n = 0
  request = function()
    n = n + 1
    local body = wrk.body
    if bodies ~= nil then body = bodies[(n % 2) + 1] end
    -- wrk.format uses the given headers instead of wrk.headers: copy them.
    local headers = {}
    for k, v in pairs(wrk.headers) do headers[k] = v end
    if xff_pool ~= nil then
      local i = (n + (offset or 0)) % xff_pool
      headers["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
    end
    return wrk.format(nil, nil, headers, body)
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  -- Threads walk the buyer pool from different places.
  thread:set("offset", #threads * 7919)
end

function init(args)
  responses = 0
  non2xx = 0
  gql_errors = 0
  first_bad = ""
end

function response(status, headers, resp_body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == "" then
      first_bad = "HTTP " .. status .. ": " .. string.sub(resp_body or "", 1, 300)
    end
  elseif resp_body == nil or string.find(resp_body, '"errors"', 1, true) then
    gql_errors = gql_errors + 1
    if first_bad == "" then
      first_bad = string.sub(resp_body or "(no body)", 1, 300)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == '\\' then return '\\\\' end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local total_responses, total_non2xx, total_errors, sample = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    total_responses = total_responses + (t:get("responses") or 0)
    total_non2xx = total_non2xx + (t:get("non2xx") or 0)
    total_errors = total_errors + (t:get("gql_errors") or 0)
    local fb = t:get("first_bad") or ""
    if sample == "" and fb ~= "" then sample = fb end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_s":%.3f,"rps":%.2f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,' ..
    '"responses_checked":%d,"non2xx":%d,"graphql_errors":%d,' ..
    '"socket_connect":%d,"socket_read":%d,"socket_write":%d,"socket_timeout":%d,' ..
    '"wrk_status_errors":%d,"bytes":%d,"first_bad":%s}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    total_responses, total_non2xx, total_errors,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status, summary.bytes,
    json_string(sample)))
end
