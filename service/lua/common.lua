-- Shared by every callstreams script. KEYS[1] is the call's hash: one field per
-- stream name holding the record as JSON, plus the call's own facts under names
-- that no stream can have: '@account' (whose call it is), '@ended' (its terminal
-- status), '@door' (when it came
-- in through the voice front door, in Redis milliseconds) and '@answered' (when
-- its answer was seen).
local call_key = KEYS[1]
local RANK = {['pending'] = 0, ['in-progress'] = 1, ['stopped'] = 2, ['failed'] = 2, ['skipped'] = 2}
local null = cjson.null

local function load(name)
  if string.sub(name, 1, 1) == '@' then return nil end
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

-- A call belongs to the account of the first webhook that named it ('@account'); a
-- call stored before that was kept belongs to its records' account.
local function owner()
  local account = redis.call('HGET', call_key, '@account')
  if account then return account end
  local fields = redis.call('HGETALL', call_key)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 1) ~= '@' then return cjson.decode(fields[i + 1]).account_sid end
  end
  return nil
end

-- True, and the call bound to `account` if it was not yet, unless it is another's.
local function owned_by(account)
  local current = owner()
  if current and current ~= account then return false end
  if not current then redis.call('HSET', call_key, '@account', account) end
  return true
end

-- Redis's own clock, in milliseconds: the one clock every web and worker host shares.
local function redis_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- A Twilio event for the call: it is checked against Twilio's Call resource only
-- after a quiet spell (see the reconciler). KEYS entry `index`: the unsettled calls.
local function heard(index, call_sid)
  redis.call('ZADD', index, redis_ms(), call_sid)
end

local function note(message)
  return {code = null, message = message, more_info = null}
end

-- The call was answered: each record still waiting for it gets its answer time.
local function answer_waiting(now_iso)
  local fields = redis.call('HGETALL', call_key)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 1) ~= '@' then
      local rec = cjson.decode(fields[i + 1])
      if rec.status == 'pending' and rec.answered_at == null then
        rec.answered_at = now_iso
        save(rec, now_iso)
      end
    end
  end
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
