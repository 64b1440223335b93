-- Operator stop. A start not yet made is skipped here; a start in flight is
-- left to its job, which sees `desired` when it finishes; a live stream gets a
-- stop job. KEYS: the call, queue, the stop job's key. ARGV: name, now_ms, wake
-- channel, the stop job's id, payload, score, expires_ms, then the account the
-- operator may reach ('' for every account): another's call has no such record.
local rec = load(ARGV[1])
if rec == nil or (ARGV[8] ~= '' and call().account ~= ARGV[8]) then return false end
local now_ms = tonumber(ARGV[2])
rec.desired = 'stopped'
if rec.status == 'pending' and rec.attempts == 0 and not leased(rec, now_ms) then
  rec.status = 'skipped'
  rec.error = note('stopped by an operator before the stream was started')
elseif rec.status == 'in-progress' then
  enqueue(KEYS[3], KEYS[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
end
local answer = save(rec, now_ms)
persist()
return answer
