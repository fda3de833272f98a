-- Removes the counts of nodes that no longer run (died, stopped, or an earlier run of this
-- node's id) from some channels (cluster::Occupancy).
-- KEYS[2i-1], KEYS[2i]: channel i's counts and vacating mark, as in occupancy_write.lua
-- ARGV[1]: how long a vacating mark lasts (ms; 0: set none, nobody will confirm it)   ARGV[2]: '1' to keep only ARGV[3..] (the
-- running nodes), '0' to remove only ARGV[3..] (one node's earlier run)
-- Returns, per channel, what changed: 2 if the cluster vacated it, 4 if only its counts
-- changed, 0 if nothing did.
local listed = {}
for i = 3, #ARGV do listed[ARGV[i]] = true end
local keep_listed = ARGV[2] == '1'
local result = {}
for i = 1, #KEYS / 2 do
  local counts, vacating = KEYS[2 * i - 1], KEYS[2 * i]
  local removed = 0
  for _, node in ipairs(redis.call('HKEYS', counts)) do
    if (listed[node] == true) ~= keep_listed then
      removed = removed + redis.call('HDEL', counts, node)
    end
  end
  local change = 0
  if removed > 0 then
    change = 4
    if redis.call('EXISTS', counts) == 0 then
      if tonumber(ARGV[1]) > 0 then redis.call('SET', vacating, '', 'PX', ARGV[1]) end
      change = 2
    end
  end
  result[i] = change
end
return result
