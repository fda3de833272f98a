-- Renews a node's heartbeat (NodeDirectory::announce), on Redis's own clock so nodes whose
-- clocks differ agree on who runs.
-- KEYS[1]: the running nodes, a sorted set node id -> when its heartbeat lapses (ms); a node
--          that stops sets its own to 0
-- ARGV[1]: node id   ARGV[2]: how long the heartbeat lasts (ms)
-- Returns {missing, lapsed...}: missing is '1' if this node was not in the set (its first
-- heartbeat, one that lapsed, or a Redis that lost its data), else '0'; lapsed are the nodes
-- whose heartbeat had lapsed or that stopped, taken out of the set by this call (so exactly
-- one caller hears of each).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #lapsed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
local missing = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local result = {tostring(missing)}
for _, node in ipairs(lapsed) do
  if node ~= ARGV[1] then table.insert(result, node) end
end
return result
