-- Records for a call's streams: each one that does not exist yet is created and its
-- start job enqueued, atomically.
-- KEYS: the call, queue, the account's call index (a sorted set by claim time, for
-- listing an account's calls), the unsettled calls (see common.lua), then each
-- stream's job key.
-- ARGV: now_ms, live_ttl_s, ended_ttl_s, mode, call_sid, wake channel, account_sid,
-- then per stream: name, row (JSON), job id, job payload, score, expires_ms.
-- Returns {outcome, record} per stream, or {'wrong-account'} for another's call.
-- mode: 'answered' (an answered callback: records waiting for the answer get it),
-- 'door' (an incoming call at the front door: remember when),
-- 'operator' (an operator start), 'restart' (a restart: nothing once the call ended).
local queue, index, channel = KEYS[2], KEYS[4], ARGV[6]
local now_ms, mode, call_sid = tonumber(ARGV[1]), ARGV[4], ARGV[5]
if not owned_by(ARGV[7]) then return {'wrong-account'} end
local ended = CALL.ended
local out_ = {}
local stored = false
if not ended and mode == 'door' and not CALL.door then
  CALL.door = redis_ms()
  CHANGED = true
elseif not ended and mode == 'answered' and CALL.door then
  answer_seen(now_ms)
end
for i = 0, #KEYS - 5 do
  local base = 8 + i * 6
  local existing = load(ARGV[base])
  if existing then
    table.insert(out_, 'exists')
    table.insert(out_, out(existing))
  elseif ended and mode == 'restart' then
    table.insert(out_, 'ended')
    table.insert(out_, false)
  else
    local rec = decode_row(ARGV[base], cjson.decode(ARGV[base + 1]))
    if ended then
      rec.status = 'skipped'
      rec.desired = 'stopped'
      rec.error = note('call ended (' .. ended .. ') before the start was asked')
      table.insert(out_, 'ended')
    else
      table.insert(out_, 'claimed')
      enqueue(KEYS[5 + i], queue, channel, ARGV[base + 2], ARGV[base + 3], ARGV[base + 4],
        ARGV[base + 5])
    end
    table.insert(out_, save(rec, now_ms))
    stored = true
  end
end
persist()
if stored then
  local calls, live_ttl = KEYS[3], tonumber(ARGV[2])
  local at = redis_ms()
  redis.call('ZADD', calls, at, call_sid)
  redis.call('ZREMRANGEBYSCORE', calls, '-inf', at - live_ttl * 1000)
  redis.call('EXPIRE', calls, live_ttl)
end
if not ended then
  heard(index, call_sid)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', redis_ms() - tonumber(ARGV[2]) * 1000)
end
redis.call('EXPIRE', call_key, ended and ARGV[3] or ARGV[2])
return out_
