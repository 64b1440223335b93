"""Pydantic's validation errors as short messages: where, and what is wrong, never the value."""

from pydantic import ValidationError


def problems(error: ValidationError) -> list[tuple[str, str]]:
    """(dotted location, message) for each error, in pydantic's order."""
    found = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required but not set"
        found.append((where, message))
    return found
