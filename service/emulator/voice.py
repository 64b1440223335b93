"""A call comes in: Twilio asks the number's Voice URL what to do, and follows one
`<Redirect>` (REFERENCE.md section G).

Each request carries the incoming-call fields (`CallStatus=ringing`,
`Direction=inbound`, ...), signed as every webhook, with the URL's
connection-override fragment honoured; a `<Redirect>` target gets the same
fields, signed for its own URL and sent with its own method.

The emulator reads one answer, the voice front door's: a 2xx, an XML content
type (`text/xml` or `application/xml`) and a `<Response>` holding exactly one
verb, `<Redirect>`, whose `method` is `POST` (the default) or `GET` and whose
URL is resolved against the URL that answered. Anything else is recorded with
`redirect: null`, where Twilio would request the number's Voice Fallback URL,
which the emulator does not model. It follows that one `<Redirect>` and
records its status, but runs no TwiML: the call is answered by the control API
or after `answer_after`, not by the verbs of the owner's TwiML.
"""

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urljoin
from xml.etree import ElementTree

import httpx

from service.emulator.delivery import Deliverer, parse_overrides
from service.emulator.numbers import Number
from service.emulator.world import Call

XML_TYPES = ("text/xml", "application/xml")


@dataclass(frozen=True)
class Redirect:
    url: str
    method: str


def parse_redirect(answer: httpx.Response | None, base: str) -> Redirect | None:
    """The one `<Redirect>` of a TwiML answer, or None if the answer is anything else."""
    if answer is None or not answer.is_success:
        return None
    media = answer.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in XML_TYPES:
        return None
    try:
        # Expat (2.4 and later) bounds entity expansion and fetches no external entity; the
        # answer comes from the test's own server anyway.
        root = ElementTree.fromstring(answer.content)  # noqa: S314
    except ElementTree.ParseError:
        return None
    if root.tag != "Response" or len(root) != 1 or root[0].tag != "Redirect" or len(root[0]):
        return None
    method, url = root[0].get("method", "POST"), (root[0].text or "").strip()
    if method not in ("GET", "POST") or not url:
        return None
    return Redirect(urljoin(base, url), method)


async def ring(deliverer: Deliverer, call: Call, number: Number) -> dict[str, Any]:
    """Ask the Voice URL, follow its `<Redirect>`; what happened, for the control API."""
    fields = call.voice_params()
    attempts, answer = await deliverer.exchange(
        call.account_sid, number.voice_url, fields, number.voice_method
    )
    redirect = parse_redirect(answer, parse_overrides(number.voice_url).url)
    followed = None
    if redirect is not None:
        tries = await deliverer.deliver(call.account_sid, redirect.url, fields, redirect.method)
        followed = {**asdict(redirect), "status": tries[-1]["status"]}
    return {
        "status": attempts[-1]["status"],
        "content_type": answer.headers.get("content-type") if answer is not None else None,
        "body": answer.text if answer is not None else None,
        "redirect": asdict(redirect) if redirect is not None else None,
        "followed": followed,
    }
