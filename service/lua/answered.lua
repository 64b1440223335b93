-- The answer of a call that came in through the front door was seen (its Call
-- resource says in-progress): remember it, and give the waiting records their
-- answer time. Their jobs, polling meanwhile, create the streams next.
-- KEYS: the call. ARGV: now_ms.
local seen = answer_seen(tonumber(ARGV[1]))
persist()
return seen and 1 or 0
