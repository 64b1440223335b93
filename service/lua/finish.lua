-- A worker records what Twilio answered, releases its lease, and completes its job in
-- the same step: done, or due again at `again_ms`. A create that finds a stop asked
-- meanwhile enqueues the stop job.
-- KEYS: the call, queue, the stop job's key, the job's key, its running mark.
-- ARGV: name, outcome, patch JSON, now_ms, wake channel, the stop job's id, payload,
-- score, expires_ms, then this job's id and again_ms ('' when it is done).
-- outcome: created, stopped, skipped, failed or retry.
local rec = load(ARGV[1])
local queue, id, again = KEYS[2], ARGV[10], ARGV[11]
if again == '' then job_done(KEYS[4], KEYS[5], queue, id) else
  job_again(KEYS[5], queue, id, tonumber(again))
  -- Due now (a refused create, an answer seen): wake a worker for it at once.
  if tonumber(again) <= tonumber(ARGV[4]) then redis.call('PUBLISH', ARGV[5], id) end
end
if rec == nil then return false end
local outcome, patch, now_ms = ARGV[2], cjson.decode(ARGV[3]), tonumber(ARGV[4])
local rank = RANK[rec.status]
rec._lease = nil
for k, v in pairs(patch) do
  if v ~= null or k == 'error' then rec[k] = v end
end
if outcome == 'created' then
  if rank < 1 then rec.status = 'in-progress' end
  if rec.started_at == null then rec.started_at = now_ms end
  if CALL.ended and RANK[rec.status] < 2 then
    rec.status = 'stopped'
  elseif rec.desired == 'stopped' and rec.status == 'in-progress' then
    enqueue(KEYS[3], queue, ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
  end
elseif outcome ~= 'retry' and rank < 2 then
  rec.status = outcome
end
local answer = save(rec, now_ms)
persist()
return answer
