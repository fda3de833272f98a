-- Renews a node's heartbeat (NodeDirectory::announce), on Redis's own clock so nodes whose
-- clocks differ agree on who runs.
-- KEYS[1]: the running nodes, a sorted set node id -> when its heartbeat lapses (ms)
-- ARGV[1]: node id   ARGV[2]: how long the heartbeat lasts (ms)
-- Lapsed nodes leave the set. Returns 1 if this node was not in it (its first heartbeat, a
-- heartbeat that lapsed, or a Redis that lost its data), 0 if it was.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
