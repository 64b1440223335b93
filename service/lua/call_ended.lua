-- Terminal call status: every stream of the call is stopped or skipped, and the
-- call's records expire after the retention time. ARGV: status, now_iso, now_ms, ttl_s.
local status, now_iso, now_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('HSETNX', call_key, '@ended', status) == 1 then
  local fields = redis.call('HGETALL', call_key)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 1) ~= '@' then
      local rec = cjson.decode(fields[i + 1])
      rec.desired = 'stopped'
      if rec.status == 'in-progress' then
        rec.status = 'stopped'
      elseif rec.status == 'pending' and not leased(rec, now_ms) then
        rec.status = 'skipped'
        rec.error = note('call ended (' .. status .. ') before the stream was started')
      end
      save(rec, now_iso)
    end
  end
end
redis.call('EXPIRE', call_key, ARGV[4])
return 1
