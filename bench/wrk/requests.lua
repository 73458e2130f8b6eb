-- wrk script for bench/run.py: replays the requests in the file named after `--`,
-- one per line, in turn: METHOD <tab> PATH <tab> BODY <tab> Header: value <tab> ...
-- (an empty BODY for none). At the end it prints one JSON line for the bench to read.

local requests = {}
local next_index = 1

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    local fields = {}
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do
      table.insert(fields, field)
    end
    local headers = {}
    for i = 4, #fields do
      local name, value = fields[i]:match("^([^:]+):%s*(.*)$")
      if name then headers[name] = value end
    end
    local body = fields[3]
    if body == "" then body = nil end
    table.insert(requests, wrk.format(fields[1], fields[2], headers, body))
  end
  file:close()
  -- threads start at different places, so that they do not send the same request together
  next_index = (math.random(#requests) - 1) % #requests + 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
