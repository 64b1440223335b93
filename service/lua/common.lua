-- Shared by every callstreams script; `scripts.py` puts the stored record's layout
-- before it (STORED, LATER, ENUMS: from service/record.py). KEYS[1] is the call: one
-- string of compact JSON, [{name: row}, account, ended, door_ms, answered_ms], where the
-- account is whose call it is, ended its terminal status, door_ms when it came in
-- through the voice front door and answered_ms when its answer was seen (Redis
-- milliseconds), and each row a record's fields by position. A call stored as a
-- hash of JSON records, as before rows, is read too and rewritten on its next change.
local call_key = KEYS[1]
local RANK = {['pending'] = 0, ['in-progress'] = 1, ['stopped'] = 2, ['failed'] = 2, ['skipped'] = 2}
local null = cjson.null
local STORED_AT = {}
for i, field in ipairs(STORED) do STORED_AT[field] = i end
local CODE = {}
for field, values in pairs(ENUMS) do
  CODE[field] = {}
  for i, value in ipairs(values) do CODE[field][value] = i end
end

-- A row to a record with its fields by name, as `service/record.py` stores it:
-- enums by number, timestamps after `created_at` as its offset, `url` without
-- `wss://`, `profile` 1 when it is the name, trailing nulls left out.
local TIMESTAMPS = {'created_at', unpack(LATER)}

local function decode_row(name, row)
  local rec = {name = name}
  for i, field in ipairs(STORED) do
    local value = row[i]
    if value == nil then value = null end
    if ENUMS[field] and type(value) == 'number' then value = ENUMS[field][value] end
    rec[field] = value
  end
  for _, field in ipairs(LATER) do
    if type(rec[field]) == 'number' then rec[field] = rec.created_at + rec[field] end
  end
  rec.url = 'wss://' .. rec.url
  if rec.profile == 1 then rec.profile = name end
  return rec
end

local function encode_row(rec)
  local row, last = {}, 0
  for i, field in ipairs(STORED) do
    local value = rec[field]
    if value == nil then value = null end
    if CODE[field] and CODE[field][value] then value = CODE[field][value] end
    row[i] = value
    if value ~= null then last = i end
  end
  for _, field in ipairs(LATER) do
    local at = STORED_AT[field]
    if type(row[at]) == 'number' then row[at] = row[at] - rec.created_at end
  end
  row[STORED_AT.url] = string.sub(rec.url, 7)
  if rec.profile == rec.name then row[STORED_AT.profile] = 1 end
  for i = last + 1, #row do row[i] = nil end
  return row
end

-- A record timestamp of the earlier form, ISO-8601 UTC, as epoch milliseconds.
local function iso_ms(text)
  local y, mo, d, h, mi, s, frac = string.match(text,
    '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.?(%d*)')
  if not y then return text end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    - 719468
  local ms = frac ~= '' and tonumber(string.sub(frac .. '00', 1, 3)) or 0
  return ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60000 + tonumber(s) * 1000 + ms
end

local CALL = nil -- the call, read once per script: {account, ended, door, answered, records}
local CHANGED = false

local function call()
  if CALL then return CALL end
  CALL = {records = {}}
  local kind = redis.call('TYPE', call_key).ok
  if kind == 'string' then
    local stored = cjson.decode(redis.call('GET', call_key))
    local function given(value) if value == null then return nil end return value end
    CALL.account, CALL.ended = given(stored[2]), given(stored[3])
    CALL.door, CALL.answered = given(stored[4]), given(stored[5])
    for name, row in pairs(stored[1]) do CALL.records[name] = decode_row(name, row) end
  elseif kind == 'hash' then
    local fields = redis.call('HGETALL', call_key)
    for i = 1, #fields, 2 do
      local field, value = fields[i], fields[i + 1]
      if field == '@account' then CALL.account = value
      elseif field == '@ended' then CALL.ended = value
      elseif field == '@door' then CALL.door = tonumber(value)
      elseif field == '@answered' then CALL.answered = value
      else
        local rec = cjson.decode(value)
        CALL.account = CALL.account or rec.account_sid
        rec.call_sid, rec.account_sid = nil, nil
        for _, at in ipairs(TIMESTAMPS) do
          if type(rec[at]) == 'string' then rec[at] = iso_ms(rec[at]) end
        end
        CALL.records[field] = rec
      end
    end
  end
  return CALL
end

-- Write the call back if a script changed it, keeping its time to live.
local function persist()
  if not CHANGED then return end
  local rows = {}
  for name, rec in pairs(CALL.records) do rows[name] = encode_row(rec) end
  local stored = {rows, CALL.account or null, CALL.ended or null, CALL.door or null,
    CALL.answered or null}
  while stored[#stored] == null do stored[#stored] = nil end
  redis.call('SET', call_key, cjson.encode(stored), 'KEEPTTL')
end

local function load(name)
  return call().records[name]
end

-- A record as the scripts answer it: account, name and row, for `store.py` to read.
local function out(rec)
  return cjson.encode({call().account, rec.name, encode_row(rec)})
end

local function save(rec, now_ms)
  rec.updated_at = now_ms
  call().records[rec.name] = rec
  CHANGED = true
  return out(rec)
end

local function leased(rec, now_ms)
  return rec._lease ~= nil and rec._lease ~= null and tonumber(rec._lease) > now_ms
end

-- True, and the call bound to `account` if it was not yet, unless it is another's:
-- a call belongs to the account of the first webhook that named it.
local function owned_by(account)
  local current = call().account
  if current and current ~= account then return false end
  if not current then
    CALL.account = account
    CHANGED = true
  end
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

-- The call was answered: remember when, and give each record still waiting for it
-- its answer time. False if the answer was seen before.
local function answer_seen(now_ms)
  if call().answered then return false end
  CALL.answered = now_ms
  CHANGED = true
  for _, rec in pairs(CALL.records) do
    if rec.status == 'pending' and rec.answered_at == null then rec.answered_at = now_ms end
  end
  return true
end

-- The job a script runs for (KEYS `job`, `running`, `queue` of the calling script):
-- taking it is arq's check (due, not running anywhere) and mark (running, for
-- `lock_ms`); it is done when its key, mark and queue entry go; it is retried when
-- its queue entry is due again at `at_ms` and its mark goes.
local function take_job(running, queue, id, now_ms, lock_ms)
  if redis.call('EXISTS', running) == 1 then return false end
  local score = redis.call('ZSCORE', queue, id)
  if not score or tonumber(score) > now_ms then return false end
  redis.call('PSETEX', running, lock_ms, '1')
  return true
end

local function job_done(job, running, queue, id)
  redis.call('DEL', job, running)
  redis.call('ZREM', queue, id)
end

local function job_again(running, queue, id, at_ms)
  redis.call('ZADD', queue, 'XX', at_ms, id)
  redis.call('DEL', running)
end

-- The same writes as arq's enqueue_job, done here so that a record and its job
-- are created in one atomic step: no crash can leave one without the other.
-- `job` is the job key (a KEYS entry of the calling script) and the rest the job's
-- id, payload, score and expiry, as `service/queue.py` builds them.
local function enqueue(job, queue, channel, id, payload, score, expires_ms)
  if redis.call('EXISTS', job) == 0 then
    redis.call('SET', job, payload, 'PX', expires_ms)
    redis.call('ZADD', queue, score, id)
    redis.call('PUBLISH', channel, id)
  end
end
