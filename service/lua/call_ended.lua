-- The call ended: every stream of the call is stopped or skipped, the call leaves
-- the unsettled calls, and its records expire after the retention time.
-- KEYS: call hash, the unsettled calls. ARGV: status, now_iso, now_ms, ttl_s, call_sid,
-- why, when this was not Twilio's status callback (else empty: the reason then goes
-- into each record's error), account_sid. Returns 0 for another account's call.
local status, now_iso, now_ms, why = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[6]
if not owned_by(ARGV[7]) then return 0 end
if redis.call('HSETNX', call_key, '@ended', status) == 1 then
  local fields = redis.call('HGETALL', call_key)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 1) ~= '@' then
      local rec = cjson.decode(fields[i + 1])
      rec.desired = 'stopped'
      if rec.status == 'in-progress' then
        rec.status = 'stopped'
        if why ~= '' then rec.error = note('call ended (' .. status .. '): ' .. why) end
      elseif rec.status == 'pending' and not leased(rec, now_ms) then
        rec.status = 'skipped'
        local message = 'call ended (' .. status .. ') before the stream was started'
        rec.error = note(why ~= '' and (message .. ': ' .. why) or message)
      end
      save(rec, now_iso)
    end
  end
end
redis.call('ZREM', KEYS[2], ARGV[5])
redis.call('EXPIRE', call_key, ARGV[4])
return 1
