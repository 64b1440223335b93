"""Calls that come in to a number, through the control API: configure numbers, make a
call arrive, and the stand-in for an owner's TwiML that a `<Redirect>` may lead to.

`POST /_emulator/calls/inbound` answers once the Voice URL exchange is over (the
Voice URL and the one `<Redirect>` it followed, see `voice.py`); the call rings
until the control API answers or ends it, or `answer_after` seconds after that.
The number's status callback hears only the call's final status.
"""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.emulator.bodies import Invalid, read_json, seconds, string
from service.emulator.numbers import NumberError, parse_number
from service.emulator.runtime import running
from service.emulator.voice import ring
from service.emulator.world import TERMINAL, new_call

OWNER_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello</Say></Response>'


async def put_number(request: Request) -> Response:
    """Configure a number, or configure it again (it keeps its SID): 201, then 200."""
    emulator = running(request)
    number = request.path_params["number"]
    known = emulator.numbers.get(number)
    try:
        configured = parse_number(
            number, await read_json(request), emulator.config.accounts, known.sid if known else None
        )
    except NumberError as error:
        raise Invalid(400, str(error)) from None
    emulator.numbers[number] = configured
    return JSONResponse(configured.view(), status_code=200 if known else 201)


async def list_numbers(request: Request) -> Response:
    return JSONResponse({"numbers": [n.view() for n in running(request).numbers.values()]})


async def arrive(request: Request) -> Response:
    """A call comes in to a configured number: it rings, and its Voice URL is asked."""
    emulator = running(request)
    data = await read_json(request, {"to", "from", "answer_after"})
    number = emulator.numbers.get(string(data, "to", None) or "")
    if number is None:
        raise Invalid(404, "to must be a number configured with PUT /_emulator/numbers/{number}")
    answer_after = seconds(data, "answer_after", emulator.behaviour.answer_after)
    call = new_call(
        number.account_sid,
        from_=string(data, "from", "+15550000001") or "",
        to=number.number,
        direction="inbound",
        status="ringing",
        status_callback=number.status_callback,
        callback_statuses=TERMINAL,
        phone_number_sid=number.sid,
    )
    emulator.calls[call.sid] = call
    voice = await ring(emulator.deliverer, call, number)
    if answer_after is not None:
        emulator.answer_later(call, answer_after)
    return JSONResponse({"call": call.view(), "voice": voice}, status_code=201)


async def owner_twiml(request: Request) -> Response:
    """What the owner's TwiML would say; it answers whatever it is asked."""
    return Response(OWNER_TWIML, media_type="text/xml")


routes = [
    Route("/_emulator/numbers", list_numbers, methods=["GET"]),
    Route("/_emulator/numbers/{number}", put_number, methods=["PUT"]),
    Route("/_emulator/calls/inbound", arrive, methods=["POST"]),
    Route("/_emulator/twiml", owner_twiml, methods=["GET", "POST"]),
]
