-- Writes this node's connection counts of some channels (cluster::Occupancy), and says which
-- channels the cluster as a whole has just occupied or vacated: atomic, so of two nodes whose
-- first (or last) connections come at once, exactly one hears it.
-- KEYS[2i-1]: channel i's counts, a hash node id -> connections on that node
-- KEYS[2i]:   channel i's vacating mark, set while its vacancy waits to be told
-- ARGV[1]: node id   ARGV[2]: how long a vacating mark lasts (ms)
-- ARGV[2+i]: channel i's connections on this node
-- Returns, per channel, what changed: 1 = occupied (the cluster's first connection),
-- 2 = vacated (its last), 3 = occupied again while vacating (a reload: nothing to tell),
-- 0 = nothing else.
local node = ARGV[1]
local result = {}
for i = 1, #KEYS / 2 do
  local counts, vacating = KEYS[2 * i - 1], KEYS[2 * i]
  local count = tonumber(ARGV[2 + i])
  local change = 0
  if count > 0 then
    local added = redis.call('HSET', counts, node, count)
    if added == 1 and redis.call('HLEN', counts) == 1 then
      if redis.call('DEL', vacating) == 1 then change = 3 else change = 1 end
    end
  elseif redis.call('HDEL', counts, node) == 1 and redis.call('EXISTS', counts) == 0 then
    redis.call('SET', vacating, node, 'PX', ARGV[2])
    change = 2
  end
  result[i] = change
end
return result
