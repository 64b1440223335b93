-- A worker takes a job and the record it works on, in one step: the job is arq's
-- (due and not running anywhere: see take_job), and the record decides what to do
-- from its status and desired state, counts the attempt and takes a lease so that no
-- other worker calls Twilio for the same stream at the same time. A job with nothing
-- to do is done here; one whose record another job holds is tried again later.
-- A call that came in through the front door and whose answer is not seen yet is
-- 'waiting': once a create was refused for it (`_refused`), the worker only polls
-- Twilio's Call resource until the answer, without creating or counting attempts.
-- KEYS: the call, the job's key, its running mark, the queue.
-- ARGV: name, kind ('start' or 'stop'), now_ms, lease_ms, job id, lock_ms, busy_ms
-- (when to try a job whose record is leased again).
-- Returns {action, record JSON, waited}; action is create, poll, stop, done, busy,
-- gone or elsewhere (the job is not this worker's to run); waited is how long ago
-- (ms) a waiting call came in, else -1.
local job, running, queue, id = KEYS[2], KEYS[3], KEYS[4], ARGV[5]
local kind, now_ms = ARGV[2], tonumber(ARGV[3])
if not take_job(running, queue, id, now_ms, tonumber(ARGV[6])) then
  return {'elsewhere', false, -1}
end
local function finished(action, raw)
  job_done(job, running, queue, id)
  persist()
  return {action, raw, -1}
end
local rec = load(ARGV[1])
if rec == nil then return finished('gone', false) end
local ended = CALL.ended ~= nil
local waited = -1
if CALL.door and not CALL.answered then waited = redis_ms() - CALL.door end
local action
if kind == 'start' then
  if rec.status ~= 'pending' then return finished('done', out(rec)) end
  if leased(rec, now_ms) then
    job_again(running, queue, id, now_ms + tonumber(ARGV[7]))
    return {'busy', false, -1}
  end
  if ended or rec.desired == 'stopped' then
    if rec.attempts == 0 or rec._refused == 1 then
      rec.status = 'skipped'
      rec.error = note(ended and 'call ended before the stream was started'
        or 'stopped by an operator before the stream was started')
      return finished('done', save(rec, now_ms))
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
  if rec.status ~= 'in-progress' then return finished('done', out(rec)) end
  if leased(rec, now_ms) then
    job_again(running, queue, id, now_ms + tonumber(ARGV[7]))
    return {'busy', false, -1}
  end
  action = 'stop'
end
if action ~= 'poll' then rec.attempts = rec.attempts + 1 end
rec._lease = now_ms + tonumber(ARGV[4])
local answer = save(rec, now_ms)
persist()
return {action, answer, waited}
