-- A worker takes a record before calling Twilio: it decides what to do from the
-- record's status and desired state, counts the attempt and takes a lease so
-- that no other worker calls Twilio for the same stream at the same time.
-- ARGV: name, kind ('start' or 'stop'), now_ms, lease_ms, now_iso.
-- Returns {action, record JSON}; action is create, stop, done, busy or gone.
local rec = load(ARGV[1])
if rec == nil then return {'gone', false} end
local kind, now_ms, now_iso = ARGV[2], tonumber(ARGV[3]), ARGV[5]
local ended = redis.call('HEXISTS', call_key, '@ended') == 1
local action
if kind == 'start' then
  if rec.status ~= 'pending' then return {'done', cjson.encode(rec)} end
  if leased(rec, now_ms) then return {'busy', cjson.encode(rec)} end
  if ended or rec.desired == 'stopped' then
    if rec.attempts == 0 then
      rec.status = 'skipped'
      rec.error = note(ended and 'call ended before the stream was started'
        or 'stopped by an operator before the stream was started')
      return {'done', save(rec, now_iso)}
    end
    -- An earlier attempt may have created it: stop by name to be sure.
    action = 'stop'
  else
    action = 'create'
  end
else
  if rec.status ~= 'in-progress' then return {'done', cjson.encode(rec)} end
  if leased(rec, now_ms) then return {'busy', cjson.encode(rec)} end
  action = 'stop'
end
rec.attempts = rec.attempts + 1
rec._lease = now_ms + tonumber(ARGV[4])
return {action, save(rec, now_iso)}
