"""The Lua scripts of the Redis feature store (``redis_store``): each runs atomically on the
server, so a prune or a marker lookup sees one state and costs one round trip."""

RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end " \
          "return 0"

# KEYS: the newest ingest time applied, the sorted set of hours; ARGV: this batch's newest
# ingest time, how far back windows reach from it (ms), the hour keys' prefix. The cutoff is
# aggregates.hour_cutoff of the running newest, so live and replay drop the same buckets.
PRUNE_HOURS = """
local newest = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(ARGV[1]))
redis.call('SET', KEYS[1], newest)
local cutoff = math.floor((newest - tonumber(ARGV[2])) / 3600000)
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff)
for _, h in ipairs(old) do redis.call('DEL', ARGV[3] .. h) end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff) end
return #old
"""

# KEYS: the sorted set of marker windows; ARGV: the windows' hash prefix, then the event ids.
# The newest marker of each id over every window kept (false where none).
LOOKUP_MARKERS = """
local gens = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for i = 2, #ARGV do out[i - 1] = false end
for _, g in ipairs(gens) do
  for s = 2, #ARGV, 500 do
    local vals = redis.call('HMGET', ARGV[1] .. g, unpack(ARGV, s, math.min(s + 499, #ARGV)))
    for j = 1, #vals do
      local v = vals[j]
      if v then
        local k = s - 2 + j
        if (not out[k]) or tonumber(v) > tonumber(out[k]) then out[k] = v end
      end
    end
  end
end
return out
"""

# KEYS: the sorted set of marker windows; ARGV: the windows' hash prefix, the first window
# kept. UNLINK: a week of markers is freed off the main thread.
PRUNE_MARKERS = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
for _, g in ipairs(old) do redis.call('UNLINK', ARGV[1] .. g) end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2]) end
return #old
"""
