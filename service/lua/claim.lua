-- Records for a call's streams: each one that does not exist yet is created and its
-- start job enqueued, atomically.
-- KEYS: call hash, queue, the account's call index (a sorted set by claim time, for
-- listing an account's calls), the unsettled calls (see common.lua), then each
-- stream's job key.
-- ARGV: now_iso, live_ttl_s, ended_ttl_s, mode, call_sid, wake channel, account_sid,
-- then per stream: record JSON, job id, job payload, score, expires_ms.
-- Returns {outcome, record JSON} per stream, or {'wrong-account'} for another's call.
-- mode: 'answered' (an answered callback: records waiting for the answer get it),
-- 'door' (an incoming call at the front door: remember when),
-- 'operator' (an operator start), 'restart' (a restart: nothing once the call ended).
local queue, index, channel = KEYS[2], KEYS[4], ARGV[6]
local now_iso, mode, call_sid = ARGV[1], ARGV[4], ARGV[5]
if not owned_by(ARGV[7]) then return {'wrong-account'} end
local ended = redis.call('HGET', call_key, '@ended')
local out = {}
local stored = false
if not ended and mode == 'door' then
  redis.call('HSETNX', call_key, '@door', redis_ms())
elseif not ended and mode == 'answered' and redis.call('HEXISTS', call_key, '@door') == 1
    and redis.call('HSETNX', call_key, '@answered', now_iso) == 1 then
  answer_waiting(now_iso)
end
for i = 0, #KEYS - 5 do
  local base = 8 + i * 5
  local rec = cjson.decode(ARGV[base])
  local existing = redis.call('HGET', call_key, rec.name)
  if existing then
    table.insert(out, 'exists')
    table.insert(out, existing)
  elseif ended and mode == 'restart' then
    table.insert(out, 'ended')
    table.insert(out, false)
  elseif ended then
    rec.status = 'skipped'
    rec.desired = 'stopped'
    rec.error = note('call ended (' .. ended .. ') before the start was asked')
    table.insert(out, 'ended')
    table.insert(out, save(rec, now_iso))
    stored = true
  else
    table.insert(out, 'claimed')
    table.insert(out, save(rec, now_iso))
    enqueue(KEYS[5 + i], queue, channel, ARGV[base + 1], ARGV[base + 2], ARGV[base + 3],
      ARGV[base + 4])
    stored = true
  end
end
if stored then
  local calls, live_ttl = KEYS[3], tonumber(ARGV[2])
  local now_ms = redis_ms()
  redis.call('ZADD', calls, now_ms, call_sid)
  redis.call('ZREMRANGEBYSCORE', calls, '-inf', now_ms - live_ttl * 1000)
  redis.call('EXPIRE', calls, live_ttl)
end
if not ended then
  heard(index, call_sid)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', redis_ms() - tonumber(ARGV[2]) * 1000)
end
redis.call('EXPIRE', call_key, ended and ARGV[3] or ARGV[2])
return out
