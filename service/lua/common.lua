-- Shared by every callstreams script. KEYS[1] is the call's hash: one field per
-- stream name holding the record as JSON, plus '@ended' once the call ended.
local call_key = KEYS[1]
local RANK = {['pending'] = 0, ['in-progress'] = 1, ['stopped'] = 2, ['failed'] = 2, ['skipped'] = 2}
local null = cjson.null

local function load(name)
  local raw = redis.call('HGET', call_key, name)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function save(rec, now_iso)
  rec.updated_at = now_iso
  local raw = cjson.encode(rec)
  redis.call('HSET', call_key, rec.name, raw)
  return raw
end

local function leased(rec, now_ms)
  return rec._lease ~= nil and rec._lease ~= null and tonumber(rec._lease) > now_ms
end

local function note(message)
  return {code = null, message = message, more_info = null}
end

-- The same writes as arq's enqueue_job, done here so that a record and its job
-- are created in one atomic step: no crash can leave one without the other.
-- `job` is the job key (a KEYS entry of the calling script) and `spec` the job's
-- id, payload, score and expiry, as `service/queue.py` builds them.
local function enqueue(job, queue, channel, id, payload, score, expires_ms)
  if redis.call('EXISTS', job) == 0 then
    redis.call('SET', job, payload, 'PX', expires_ms)
    redis.call('ZADD', queue, score, id)
    redis.call('PUBLISH', channel, id)
  end
end
