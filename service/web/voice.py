"""The voice front door: a number's Voice URL, answered with a `<Redirect>`.

Twilio tells nobody but the owner of a call's TwiML that an inbound call was
answered (REFERENCE.md section G). So the number's Voice URL points here: the call's
matching profiles are claimed as pending records, and the call is sent on to its
owner's TwiML at once. The caller's call never waits on us: with Redis down or slow
the answer is still the redirect, within the usual deadline, and the call is
untracked (a metric and a log line say so). The worker starts each stream once the
call is answered (see `worker/answers.py`).
"""

from xml.sax.saxutils import escape, quoteattr

import structlog
from starlette.requests import Request
from starlette.routing import Route

from service.numbers import Number, next_hop
from service.store import StoreUnavailable
from service.twilio_terms import VOICE_PATH
from service.web.errors import ApiError
from service.web.twilio_requests import Webhook, verified_fields
from service.web.webhooks import claim_matching

log = structlog.get_logger("callstreams.voice")


def redirect(number: Number) -> bytes:
    """TwiML with exactly one verb: go on to the number's own TwiML."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Redirect method={quoteattr(number.method)}>"
        f"{escape(number.twiml_url)}</Redirect></Response>"
    ).encode()


async def voice(request: Request) -> bytes:
    state, fields = await verified_fields(request)
    number = next_hop(state.catalog.numbers, fields)
    if number is None:
        state.metrics.voice_calls.labels("unknown-number").inc()
        raise ApiError(404, "unknown number", "no [[numbers]] entry serves this To")
    outcome = "claimed"
    try:
        await claim_matching(state, fields, "door", answered_at=None)
    except StoreUnavailable as error:
        outcome = "untracked"
        log.warning("call not tracked: its streams will not start", error=str(error))
    state.metrics.voice_calls.labels(outcome).inc()
    return redirect(number)


routes = [Route(VOICE_PATH, Webhook(voice), methods=["POST"])]
