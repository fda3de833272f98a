-- The nodes whose heartbeat has not lapsed (NodeDirectory::all_running), on Redis's clock.
-- KEYS[1]: the running nodes, a sorted set node id -> when its heartbeat lapses (ms)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
