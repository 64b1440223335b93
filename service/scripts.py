"""The Lua scripts in `service/lua/`, registered with a Redis client.

A script is the concatenation of the named files (shared functions first), so each
Redis step stays a single atomic round trip without copying code between scripts.
Before them comes the stored record's layout from `record.py`, so that the field
order and the enums have one definition.
"""

from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.record import ENUMS, STORED


def _lua_list(values: tuple[str, ...]) -> str:
    return "{" + ", ".join(f"'{value}'" for value in values) + "}"


LAYOUT = (
    f"local STORED = {_lua_list(STORED)}\n"
    "local ENUMS = {"
    + ", ".join(f"{field} = {_lua_list(values)}" for field, values in ENUMS.items())
    + "}\n"
)


def script(redis: Redis, *names: str) -> AsyncScript:
    lua = files("service") / "lua"
    source = "".join((lua / f"{name}.lua").read_text() for name in names)
    return redis.register_script(LAYOUT + source)
