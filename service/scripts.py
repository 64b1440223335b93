"""The Lua scripts in `service/lua/`, registered with a Redis client.

A script is the concatenation of the named files (shared functions first), so each
Redis step stays a single atomic round trip without copying code between scripts.
Before them comes the stored record's layout from `record.py`, so that the field
order, the timestamps stored as offsets and the enums have one definition.
"""

import asyncio
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from service.record import ENUMS, LATER, STORED


def _lua_list(values: tuple[str, ...]) -> str:
    return "{" + ", ".join(f"'{value}'" for value in values) + "}"


LAYOUT = (
    f"local STORED = {_lua_list(STORED)}\n"
    f"local LATER = {_lua_list(LATER)}\n"
    "local ENUMS = {"
    + ", ".join(f"{field} = {_lua_list(values)}" for field, values in ENUMS.items())
    + "}\n"
)


def script(redis: Redis, *names: str) -> AsyncScript:
    lua = files("service") / "lua"
    source = "".join((lua / f"{name}.lua").read_text() for name in names)
    return redis.register_script(LAYOUT + source)


class Batched:
    """A script whose concurrent calls go to Redis together, in one pipeline.

    Calls made in the same turn of the event loop (webhooks arriving together) are
    sent at the end of that turn: one connection taken from the pool, one write and
    one read for all of them, instead of each. A lone call is sent as it is."""

    def __init__(self, redis: Redis, script: AsyncScript) -> None:
        self._redis = redis
        self._script = script
        self._waiting: list[tuple[list[Any], list[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, args, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[list[Any], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                keys, args, _ = batch[0]
                results: list[Any] = [await self._script(keys=keys, args=args)]
            else:
                results = await self._pipelined(batch)
        except Exception as error:  # Redis unreachable: every caller learns it
            results = [error] * len(batch)
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller gave up (the deadline)
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipelined(
        self, batch: list[tuple[list[Any], list[Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        sha = self._script.sha
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted: load it
            await self._redis.script_load(self._script.script)
            for i, (keys, args, _) in enumerate(batch):
                if isinstance(results[i], NoScriptError):
                    results[i] = await self._script(keys=keys, args=args)
        return results
