"""Request bodies, read with their type and size checked before anything is trusted.

The size cap holds while the body is read, so a chunked body without a length is
refused at the cap, not buffered whole first; a client that goes away mid-body is
not an error of ours (see `errors.py`).
"""

from starlette.requests import Request

from service.web.errors import ApiError


async def read_body(request: Request, media_type: str, limit: int) -> bytes:
    """The body, if it is `media_type` and at most `limit` bytes; else 415 or 413."""
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != media_type:
        raise ApiError(415, "unsupported media type", f"expected {media_type}")
    too_large = ApiError(413, "request body too large", f"at most {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit()):
        raise ApiError(400, "invalid header", "Content-Length")
    if declared is not None and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)
