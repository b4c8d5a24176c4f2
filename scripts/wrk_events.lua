-- wrk script of scripts/bench_events.py: POST batches of unique events.
--
--   wrk -t1 -c8 -d15s --latency --timeout 30s -s scripts/wrk_events.lua http://127.0.0.1:8000 \
--       -- PATH BATCH KEY PREFIX ITEMS USER0 USERS
--
-- PATH: /v1/events or /v1/events/discard (the no-op floor, same bodies); BATCH: events per
-- request; KEY: a write key (sent as X-API-Key); PREFIX: makes this run's event ids unique
-- (ids are PREFIX-<thread>-<request>-<k>, so no two requests of a run share one: the log would
-- store a repeated id once); ITEMS: comma-separated catalog ids to draw from; users are drawn
-- from USER0 .. USER0 + USERS - 1. Three events in four are plays (watch_fraction 0.10..0.99),
-- one a click; the timestamp is the current second. Prints one line at the end:
-- "EVENTS accepted=<n> duplicates=<n> rejected_requests=<n> non202=<n>" from the responses.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local function split(text)
  local out = {}
  for value in string.gmatch(text, "[^,]+") do
    out[#out + 1] = value
  end
  return out
end

function init(args)
  path, batch, key, prefix = args[1], tonumber(args[2]), args[3], args[4]
  items = split(args[5])
  user0, users = tonumber(args[6]), tonumber(args[7])
  accepted, duplicates, rejected, non202 = 0, 0, 0, 0
  math.randomseed(tid * 7919 + os.time())
  headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}
end

function request()
  counter = counter + 1
  local ts = os.time()
  local parts = {}
  local id = prefix .. "-" .. tid .. "-" .. counter .. "-"
  for k = 1, batch do
    local user = user0 + math.random(0, users - 1)
    local item = items[math.random(#items)]
    if k % 4 == 0 then
      parts[k] = string.format('{"event_id":"%s%d","type":"click","user_id":%d,"item_id":%s,'
                               .. '"timestamp":%d}', id, k, user, item, ts)
    else
      parts[k] = string.format('{"event_id":"%s%d","type":"play","user_id":%d,"item_id":%s,'
                               .. '"timestamp":%d,"watch_fraction":0.%d}', id, k, user, item,
                               ts, math.random(10, 99))
    end
  end
  return wrk.format("POST", path, headers, "[" .. table.concat(parts, ",") .. "]")
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + tonumber(string.match(body, '"accepted":(%d+)') or 0)
    duplicates = duplicates + tonumber(string.match(body, '"duplicates":(%d+)') or 0)
    if not string.find(body, '"rejected":[]', 1, true) then
      rejected = rejected + 1
    end
  else
    non202 = non202 + 1
  end
end

function done(summary, latency, requests)
  local a, d, r, n = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    d = d + thread:get("duplicates")
    r = r + thread:get("rejected")
    n = n + thread:get("non202")
  end
  io.write(string.format("EVENTS accepted=%d duplicates=%d rejected_requests=%d non202=%d\n",
                         a, d, r, n))
end
