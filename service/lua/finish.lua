-- A worker records what Twilio answered and releases its lease. A create that
-- finds a stop asked meanwhile enqueues the stop job in the same step.
-- KEYS: call hash, queue, the stop job's key. ARGV: name, outcome, patch JSON,
-- now_iso, wake channel, then the stop job's id, payload, score, expires_ms.
-- outcome: created, stopped, skipped, failed or retry.
local rec = load(ARGV[1])
if rec == nil then return false end
local outcome, patch, now_iso = ARGV[2], cjson.decode(ARGV[3]), ARGV[4]
local rank = RANK[rec.status]
rec._lease = nil
for k, v in pairs(patch) do
  if v ~= null or k == 'error' then rec[k] = v end
end
if outcome == 'created' then
  if rank < 1 then rec.status = 'in-progress' end
  if rec.started_at == null then rec.started_at = now_iso end
  if redis.call('HEXISTS', call_key, '@ended') == 1 and RANK[rec.status] < 2 then
    rec.status = 'stopped'
  elseif rec.desired == 'stopped' and rec.status == 'in-progress' then
    enqueue(KEYS[3], KEYS[2], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
  end
elseif outcome ~= 'retry' and rank < 2 then
  rec.status = outcome
end
return save(rec, now_iso)
