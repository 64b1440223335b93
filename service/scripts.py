"""The Lua scripts in `service/lua/`, registered with a Redis client.

A script is the concatenation of the named files (shared functions first), so each
Redis step stays a single atomic round trip without copying code between scripts.
"""

from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def script(redis: Redis, *names: str) -> AsyncScript:
    lua = files("service") / "lua"
    return redis.register_script("".join((lua / f"{name}.lua").read_text() for name in names))
