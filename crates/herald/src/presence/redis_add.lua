-- Adds one presence entry, atomically (PresenceStore::add).
-- KEYS[1]: the channel's entries, a hash socket id -> entry JSON
-- KEYS[2]: the channel's users, a hash user key -> number of entries
-- ARGV[1]: socket id   ARGV[2]: entry JSON   ARGV[3]: user key
-- ARGV[4]: the channel name as a JSON string to publish `PresenceChannelUpdated`, or ''
-- Returns every entry after the addition, or nil if the socket already had one.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return false
end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
local entries = redis.call('HVALS', KEYS[1])
if ARGV[4] ~= '' then
  redis.call('PUBLISH', 'PresenceChannelUpdated',
    '{"event":{"channel":' .. ARGV[4] .. ',"members":[' .. table.concat(entries, ',') .. ']}}')
end
return entries
