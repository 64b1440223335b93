"""When to call Twilio again after a transient failure, and when to give up.

Capped exponential backoff with full jitter, so that replicas retrying after
the same 429 spread out; Twilio's `Retry-After` wins when it asks for longer.
Attempts are counted in the record, so the policy survives worker restarts.
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    max_age: timedelta = timedelta(minutes=2)
    base: float = 0.25
    cap: float = 15.0

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt `attempts + 1`."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        jittered = random.uniform(0, ceiling)
        return max(jittered, min(retry_after, self.cap)) if retry_after else jittered

    def exhausted(self, attempts: int, since: str | None) -> bool:
        """True when another attempt would pass the attempt or age cap."""
        if attempts >= self.max_attempts:
            return True
        if since is None:
            return False
        started = datetime.fromisoformat(since)
        return datetime.now(UTC) - started > self.max_age
