-- Stream status callback. Events may arrive late, twice or out of order, so a
-- record only ever moves forward: pending → in-progress → stopped/failed.
-- KEYS: the call, the unsettled calls. ARGV: stream_sid, stream_name, event, error
-- message, now_ms, call_sid, account_sid.
-- Returns the record, and 1 if this was the record's first stream-started event
-- (the hidden `_s` field remembers it, for the answered → started histogram); false
-- for an unknown stream; {'wrong-account'} for another account's call, {'wrong-sid'}
-- when the named stream has another SID and no stream has this one.
local sid, name, event, message, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if not owned_by(ARGV[7]) then return {'wrong-account'} end
local rec = load(name)
local named = rec
if rec == nil or (rec.sid ~= null and rec.sid ~= sid) then
  rec = nil
  for _, candidate in pairs(CALL.records) do
    if candidate.sid == sid then rec = candidate end
  end
end
if rec == nil then
  persist()
  if named ~= nil then return {'wrong-sid'} end
  return false
end
if not CALL.ended then heard(KEYS[2], ARGV[6]) end
if rec.sid == null then rec.sid = sid end
local rank = RANK[rec.status]
if event == 'stream-started' and rank < 1 then
  rec.status = 'in-progress'
elseif event == 'stream-stopped' and rank < 2 then
  rec.status = 'stopped'
elseif event == 'stream-error' and rank < 2 then
  rec.status = 'failed'
  rec.error = note(message)
end
if event == 'stream-started' and rec.started_at == null then rec.started_at = now_ms end
local first = 0
if event == 'stream-started' and rec._s == null then
  rec._s = 1
  first = 1
end
local answer = save(rec, now_ms)
persist()
return {answer, first}
