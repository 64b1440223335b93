"""The restart policy: which stream starts again after Twilio reports `stream-error`.

A restarted stream is named after the first of its chain (`transcription-r1`, `-r2`,
…) because Twilio keeps names unique per call; a repeated delivery of the same error
finds that name taken and starts nothing more.
"""

from datetime import timedelta
from typing import NamedTuple

from service.profiles import Profile
from service.record import StreamRecord, new_record


class Restart(NamedTuple):
    record: StreamRecord | None  # the restart to claim, if there is one
    after: timedelta  # when its start is due
    exhausted: bool  # the chain has used every restart its policy allows


NONE = Restart(None, timedelta(0), exhausted=False)


def restart_for(failed: StreamRecord, profile: Profile | None) -> Restart:
    """What `failed` calls for under its profile's policy: nothing without a policy or
    after an operator stop or hang-up, else its next restart until the chain's limit."""
    if profile is None or profile.restart is None:
        return NONE
    if failed["status"] != "failed" or failed["desired"] != "started":
        return NONE  # stopped by an operator or a hang-up, or the error came after a stop
    number = failed["restart"] + 1
    if number > profile.restart.max:
        return NONE._replace(exhausted=True)
    root = failed["restart_of"] or failed["name"]
    record = new_record(
        call_sid=failed["call_sid"],
        account_sid=failed["account_sid"],
        name=f"{root}-r{number}",
        url=failed["url"],
        track=failed["track"],
        parameters=failed["parameters"],
        profile=failed["profile"],
        answered_at=failed["answered_at"],
        restart_of=root,
        restart=number,
    )
    return Restart(record, profile.restart.backoff, exhausted=False)
