-- A call that came in through the front door rang for too long: the starts still
-- waiting for its answer are skipped, saying why. Nothing else changes: the call
-- may still be answered and end later, as Twilio reports.
-- KEYS: call hash. ARGV: now_iso, now_ms, reason.
local now_iso, now_ms = ARGV[1], tonumber(ARGV[2])
local skipped = 0
if redis.call('HEXISTS', call_key, '@answered') == 1 then return 0 end
local fields = redis.call('HGETALL', call_key)
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 1) ~= '@' then
    local rec = cjson.decode(fields[i + 1])
    if rec.status == 'pending' and rec.answered_at == null and not leased(rec, now_ms) then
      rec.status = 'skipped'
      rec.desired = 'stopped'
      rec.error = note(ARGV[3])
      save(rec, now_iso)
      skipped = skipped + 1
    end
  end
end
return skipped
