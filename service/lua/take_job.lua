-- A worker takes one arq job, as arq's start_jobs does with WATCH/MULTI, in one
-- atomic step: the job is due and not running anywhere, so mark it running.
-- KEYS: the job's in-progress key, the queue. ARGV: job id, now_ms, lock_ms.
-- Returns the job's score, or nil.
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
redis.call('PSETEX', KEYS[1], ARGV[3], '1')
return score
