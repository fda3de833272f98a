-- Whether vacated channels are still vacant when their delay is over (cluster::Occupancy).
-- KEYS[2i-1], KEYS[2i]: channel i's counts and vacating mark, as in occupancy_write.lua
-- Returns, per channel, 1 if it is still vacant and this caller is the one to tell (it takes
-- the mark), else 0 (someone came back, or another node told it).
local result = {}
for i = 1, #KEYS / 2 do
  local counts, vacating = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('EXISTS', counts) == 0 and redis.call('DEL', vacating) == 1 then
    result[i] = 1
  else
    result[i] = 0
  end
end
return result
