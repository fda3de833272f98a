-- Says a node stopped (NodeDirectory::withdraw): its heartbeat lapses at once (score 0), so the
-- next heartbeat of another node hears of it and cleans up after it. When no node runs any
-- more, nobody would: the set goes (a node starting later sweeps what is left).
-- KEYS[1]: the running nodes, a sorted set node id -> when its heartbeat lapses (ms)
-- ARGV[1]: node id
-- Returns how many nodes still run.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', 0, ARGV[1])
local running = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
if running == 0 then
  redis.call('DEL', KEYS[1])
end
return running
