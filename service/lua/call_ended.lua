-- The call ended: every stream of the call is stopped or skipped, the call leaves
-- the unsettled calls, and its records expire after the retention time.
-- KEYS: the call, the unsettled calls. ARGV: status, now_ms, ttl_s, call_sid, why
-- (when this was not Twilio's status callback, else empty: the reason then goes
-- into each record's error), account_sid. Returns 0 for another account's call.
local status, now_ms, why = ARGV[1], tonumber(ARGV[2]), ARGV[5]
if not owned_by(ARGV[6]) then return 0 end
if not CALL.ended then
  CALL.ended = status
  CHANGED = true
  for _, rec in pairs(CALL.records) do
    rec.desired = 'stopped'
    if rec.status == 'in-progress' then
      rec.status = 'stopped'
      if why ~= '' then rec.error = note('call ended (' .. status .. '): ' .. why) end
    elseif rec.status == 'pending' and not leased(rec, now_ms) then
      rec.status = 'skipped'
      local message = 'call ended (' .. status .. ') before the stream was started'
      rec.error = note(why ~= '' and (message .. ': ' .. why) or message)
    end
    save(rec, now_ms)
  end
end
persist()
redis.call('ZREM', KEYS[2], ARGV[4])
redis.call('EXPIRE', call_key, ARGV[3])
return 1
