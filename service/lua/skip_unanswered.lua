-- A call that came in through the front door rang for too long: the starts still
-- waiting for its answer are skipped, saying why. Nothing else changes: the call
-- may still be answered and end later, as Twilio reports.
-- KEYS: the call. ARGV: now_ms, reason.
local now_ms = tonumber(ARGV[1])
local skipped = 0
if call().answered then return 0 end
for _, rec in pairs(CALL.records) do
  if rec.status == 'pending' and rec.answered_at == null and not leased(rec, now_ms) then
    rec.status = 'skipped'
    rec.desired = 'stopped'
    rec.error = note(ARGV[2])
    save(rec, now_ms)
    skipped = skipped + 1
  end
end
persist()
return skipped
