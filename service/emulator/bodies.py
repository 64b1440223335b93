"""The control API's JSON bodies: reading them, their fields, and refusing a bad one
with a 400 that says which field."""

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse


class Invalid(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.response = JSONResponse({"error": message}, status_code=status)


async def read_json(request: Request, fields: set[str] | None = None) -> dict[str, Any]:
    """The body as an object (empty if none); with `fields`, any other field is refused."""
    body = await request.body()
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise Invalid(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise Invalid(400, "the body must be a JSON object")
    unknown = set(data) - fields if fields is not None else set()
    if unknown:
        raise Invalid(400, f"unknown fields: {', '.join(sorted(unknown))}")
    return data


def string(data: dict[str, Any], key: str, default: str | None) -> str | None:
    value = data.get(key, default)
    if value is not None and not isinstance(value, str):
        raise Invalid(400, f"{key} must be a string")
    return value


def seconds(data: dict[str, Any], key: str, default: float | None) -> float | None:
    """A number of seconds, 0 or more, or null."""
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise Invalid(400, f"{key} must be a number of seconds (0 or more) or null")
    return float(value)
