-- Answered call or operator start: create each record that does not exist yet
-- and enqueue its start job, atomically.
-- KEYS: call hash, queue, the account's call index (a sorted set by claim time,
-- for listing an account's calls), then each stream's job key.
-- ARGV: now_iso, live_ttl_s, ended_ttl_s, only_live (1: create nothing once the
-- call ended), call_sid, wake channel, then per stream: record JSON, job id, job
-- payload, score, expires_ms.
local queue, channel = KEYS[2], ARGV[6]
local now_iso = ARGV[1]
local ended = redis.call('HGET', call_key, '@ended')
local out = {}
local stored = false
for i = 0, #KEYS - 4 do
  local base = 7 + i * 5
  local rec = cjson.decode(ARGV[base])
  local existing = redis.call('HGET', call_key, rec.name)
  if existing then
    table.insert(out, 'exists')
    table.insert(out, existing)
  elseif ended and ARGV[4] == '1' then
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
    enqueue(KEYS[4 + i], queue, channel, ARGV[base + 1], ARGV[base + 2], ARGV[base + 3],
      ARGV[base + 4])
    stored = true
  end
end
if stored then
  local index, live_ttl = KEYS[3], tonumber(ARGV[2])
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('ZADD', index, now_ms, ARGV[5])
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now_ms - live_ttl * 1000)
  redis.call('EXPIRE', index, live_ttl)
end
redis.call('EXPIRE', call_key, ended and ARGV[3] or ARGV[2])
return out
