-- A worker takes a record before calling Twilio: it decides what to do from the
-- record's status and desired state, counts the attempt and takes a lease so
-- that no other worker calls Twilio for the same stream at the same time.
-- A call that came in through the front door and whose answer is not seen yet is
-- 'waiting': once a create was refused for it (`_refused`), the worker only polls
-- Twilio's Call resource until the answer, without creating or counting attempts.
-- ARGV: name, kind ('start' or 'stop'), now_ms, lease_ms, now_iso.
-- Returns {action, record JSON, waited}; action is create, poll, stop, done, busy or
-- gone; waited is how long ago (ms) a waiting call came in, else -1.
local rec = load(ARGV[1])
if rec == nil then return {'gone', false, -1} end
local kind, now_ms, now_iso = ARGV[2], tonumber(ARGV[3]), ARGV[5]
local ended = redis.call('HEXISTS', call_key, '@ended') == 1
local waited = -1
local door = redis.call('HGET', call_key, '@door')
if door and redis.call('HEXISTS', call_key, '@answered') == 0 then
  waited = redis_ms() - tonumber(door)
end
local action
if kind == 'start' then
  if rec.status ~= 'pending' then return {'done', cjson.encode(rec), -1} end
  if leased(rec, now_ms) then return {'busy', cjson.encode(rec), -1} end
  if ended or rec.desired == 'stopped' then
    if rec.attempts == 0 or rec._refused == 1 then
      rec.status = 'skipped'
      rec.error = note(ended and 'call ended before the stream was started'
        or 'stopped by an operator before the stream was started')
      return {'done', save(rec, now_iso), -1}
    end
    -- An earlier attempt may have created it: stop by name to be sure.
    action = 'stop'
  elseif rec._refused == 1 and waited >= 0 then
    action = 'poll'
  else
    action = 'create'
    rec._refused = nil
  end
else
  if rec.status ~= 'in-progress' then return {'done', cjson.encode(rec), -1} end
  if leased(rec, now_ms) then return {'busy', cjson.encode(rec), -1} end
  action = 'stop'
end
if action ~= 'poll' then rec.attempts = rec.attempts + 1 end
rec._lease = now_ms + tonumber(ARGV[4])
return {action, save(rec, now_iso), waited}
