-- Renews a node's heartbeat (NodeDirectory::announce), on Redis's own clock so nodes whose
-- clocks differ agree on who runs.
-- KEYS[1]: the running nodes, a sorted set node id -> when its heartbeat lapses (ms); a node
--          that stops sets its own to 0
-- KEYS[2]: where the tombstones of lapsed nodes start (followed by a node id)
-- ARGV[1]: node id   ARGV[2]: how long the heartbeat lasts (ms)
-- ARGV[3]: how long a tombstone lasts (ms)
-- Returns {state, lapsed...}. state: '0' this node was listed; '1' it was not (its first
-- heartbeat, or a Redis that lost its data); '2' it was taken out as lapsed by another node,
-- which removed its members (a partition, or Redis out of reach for this node alone).
-- lapsed: the nodes whose heartbeat had lapsed or that stopped, taken out of the set by this
-- call (so exactly one caller hears of each); each that lapsed (rather than stopped, with a
-- score of 0) leaves a tombstone. Only a caller that was listed hears of them.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')
if #lapsed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
local state = '0'
if redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) == 1 then
  state = '1'
  if redis.call('DEL', KEYS[2] .. ARGV[1]) == 1 then state = '2' end
end
local result = {state}
-- A caller that was missing itself (Redis was away for everyone, or lost its data) tells and
-- tombstones nobody: the others lapsed the same way and are likely running; the periodic
-- sweeps catch any that did die.
if state ~= '0' then return result end
for i = 1, #lapsed, 2 do
  local node, score = lapsed[i], tonumber(lapsed[i + 1])
  if node ~= ARGV[1] then
    table.insert(result, node)
    if score > 0 then redis.call('SET', KEYS[2] .. node, '1', 'PX', ARGV[3]) end
  end
end
return result
