-- Removes one presence entry, atomically (PresenceStore::remove).
-- KEYS[1]: the channel's entries, a hash socket id -> entry JSON (with a "user" field)
-- KEYS[2]: the channel's users, a hash user key -> number of entries
-- KEYS[3]: the channel's leave marks, a hash user key -> 1 (presence/leave_marks.rs)
-- ARGV[1]: socket id
-- ARGV[2]: the channel name as a JSON string to publish `PresenceChannelUpdated`, or ''
-- ARGV[3]: how long a leave mark lasts (ms), or 0 for none
-- Returns {entry JSON, entries of the same user left}, or nil if the socket had none.
-- Redis deletes a hash when its last field goes, so an emptied channel leaves no key.
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then
  return false
end
redis.call('HDEL', KEYS[1], ARGV[1])
local ok, decoded = pcall(cjson.decode, entry)
local user = ok and type(decoded) == 'table' and decoded['user']
local others = 0
if type(user) == 'string' then
  others = redis.call('HINCRBY', KEYS[2], user, -1)
  if others <= 0 then
    redis.call('HDEL', KEYS[2], user)
    others = 0
    if tonumber(ARGV[3]) > 0 then
      redis.call('HSET', KEYS[3], user, 1)
      redis.call('PEXPIRE', KEYS[3], ARGV[3])
    end
  end
end
if ARGV[2] ~= '' then
  local entries = redis.call('HVALS', KEYS[1])
  redis.call('PUBLISH', 'PresenceChannelUpdated',
    '{"event":{"channel":' .. ARGV[2] .. ',"members":[' .. table.concat(entries, ',') .. ']}}')
end
return {entry, others}
