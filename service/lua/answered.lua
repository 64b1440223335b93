-- The answer of a call that came in through the front door was seen (its Call
-- resource says in-progress): remember it, and give the waiting records their
-- answer time. Their jobs, polling meanwhile, create the streams next.
-- KEYS: call hash. ARGV: now_iso.
if redis.call('HSETNX', call_key, '@answered', ARGV[1]) == 0 then return 0 end
answer_waiting(ARGV[1])
return 1
