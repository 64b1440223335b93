-- The reconciler takes the calls that had no Twilio event for its period, and marks
-- each one checked now, in one step: two reconcilers never check the same call in
-- the same period. O(log n) per call taken.
-- KEYS: the unsettled calls. ARGV: the period (ms), at most how many to take.
-- Returns the CallSids taken.
local now_ms = redis_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[1]),
  'LIMIT', 0, ARGV[2])
for _, call_sid in ipairs(due) do
  redis.call('ZADD', KEYS[1], now_ms, call_sid)
end
return due
