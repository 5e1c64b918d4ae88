-- Replays prepared requests from a file, one per line:
--   METHOD <TAB> PATH <TAB> HEADERS <TAB> BODY      (HEADERS: "Name: value" joined by \31)
-- Usage: wrk ... -s requests.lua -- FILE NTHREADS CYCLE
-- Each thread takes every NTHREADS-th line, so no two connections send the same request.
-- With CYCLE=0 (fresh webhooks) a thread that runs out of lines starts over and counts the
-- repeats in `wrapped`; the harness treats any repeat as an error of sizing.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function split(s, sep)
  local out = {}
  local start = 1
  while true do
    local i = string.find(s, sep, start, true)
    if not i then
      table.insert(out, string.sub(s, start))
      return out
    end
    table.insert(out, string.sub(s, start, i - 1))
    start = i + 1
  end
end

function init(args)
  local file, nthreads, cycle = args[1], tonumber(args[2]), args[3]
  reqs = {}
  wrapped = 0
  cursor = 0
  allow_cycle = (cycle == "1")
  local n = 0
  for line in io.lines(file) do
    -- Cycling files are shared whole (each thread starts elsewhere); one-time files are split.
    if allow_cycle or n % nthreads == tid then
      local parts = split(line, "\t")
      local headers = {}
      if parts[3] ~= nil and parts[3] ~= "" then
        for _, h in ipairs(split(parts[3], "\31")) do
          local k, v = string.match(h, "^([^:]+):%s*(.*)$")
          headers[k] = v
        end
      end
      local body = parts[4]
      if body == "" then body = nil end
      table.insert(reqs, wrk.format(parts[1], parts[2], headers, body))
    end
    n = n + 1
  end
  total = #reqs
  if allow_cycle then cursor = math.floor(total * tid / nthreads) end
end

function request()
  cursor = cursor + 1
  if cursor > total then
    cursor = 1
    if not allow_cycle then wrapped = wrapped + 1 end
  end
  return reqs[cursor]
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do w = w + (t:get("wrapped") or 0) end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f, "max_us": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max, w))
end
