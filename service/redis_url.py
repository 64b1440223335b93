"""`REDIS_URL`: one Redis server, or a master found through Redis Sentinel.

`redis://`, `rediss://` and `unix://` are redis-py's own URLs. A Sentinel URL
names the sentinels and the master's service name, which redis-py and arq do not
parse from a URL:

    redis+sentinel://[[user]:password@]host1:26379,host2:26379/mymaster[/db]

The password is the master's; `rediss+sentinel://` speaks TLS to the master.
For `rediss://` the server's hostname is verified, which redis-py skips unless asked.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None
    tls: bool


def tls_options(url: str) -> dict[str, Any]:
    """How a TLS connection to `url`'s Redis is checked: certificate and hostname."""
    if url.startswith(("rediss://", "rediss+sentinel://")):
        return {"ssl_check_hostname": True, "ssl_cert_reqs": "required"}
    return {}


def parse_sentinel(url: str) -> SentinelTarget | None:
    """The Sentinel target of a `redis+sentinel://` URL; None for other URLs.

    Raises ValueError naming what is wrong, never echoing the password."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis+sentinel", "rediss+sentinel"):
        return None
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError("sentinels must be given as host:port[,host:port...]")
        sentinels.append((name, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("the path must be /<master service name>[/<db number>]")
    return SentinelTarget(
        sentinels=sentinels,
        service=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=parts.scheme == "rediss+sentinel",
    )


class SentinelRedis(Redis):
    """A master found through Sentinel; closing it closes the sentinel connections too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        await close_sentinels(self)


async def close_sentinels(client: Redis) -> None:
    """Close the connections to the sentinels behind `client`, if any."""
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", []):
        await sentinel.aclose()


def connect(url: str, **options: Any) -> Redis:
    """A client for `url` with redis-py `options` (timeouts, retries)."""
    target = parse_sentinel(url)
    if target is None:
        client: Redis = Redis.from_url(url, **tls_options(url), **options)
        return client
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    master: Redis = sentinel.master_for(
        target.service, redis_class=SentinelRedis, db=target.db, username=target.username,
        password=target.password, ssl=target.tls, **tls_options(url), **options,
    )  # fmt: skip
    return master
