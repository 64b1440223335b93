"""Where a stream may go: the policy every stream URL passes, from a profile or an
operator (SPEC "Who may touch what").

Twilio opens the WebSocket, so a bad URL does not reach into our network; but a URL
with credentials would be stored and shown by the API, and one aimed at loopback,
private or metadata addresses is at best a mistake and at worst a probe of Twilio's
network in our name. So: `wss://`, no user or password, no query, a host that is a
DNS name or a public IP address, never `localhost`; and, when
`CALLSTREAMS_STREAM_HOSTS` is set, a host on one of its suffixes. The check is on the
URL as written: a DNS name that resolves to a private address is for the suffix list
to exclude.
"""

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

MAX_URL = 2048
# What the OpenAPI document promises is accepted: a DNS name (never localhost), an
# optional port, a path. Public IP literals are accepted too but not advertised.
PATTERN = (
    r"^wss://(?!(?:[A-Za-z0-9-]+\.)*localhost\.?(?:[:/]|$))"
    r"(?:(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)+[A-Za-z][A-Za-z0-9-]{0,62}(?<!-)\.?"
    r"(?::[1-9][0-9]{0,3})?(?:/[^?#]*)?$"
)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def dns_name(host: str) -> bool:
    """A host name of letters, digits and hyphens, whose last label is not a number."""
    labels = host.removesuffix(".").split(".")
    return (
        len(host) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
        and not re.fullmatch(r"0x[0-9a-fA-F]+", labels[-1])
    )


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check(url: str, hosts: Sequence[str] = ()) -> str:
    """`url` if the policy allows it; else ValueError saying which rule it breaks."""
    if len(url) > MAX_URL:
        raise ValueError(f"must be at most {MAX_URL} characters")
    if not url.startswith("wss://"):
        raise ValueError("must be a wss:// URL (Twilio streams only to wss)")
    if "?" in url or "#" in url:
        raise ValueError("must not carry a query string; use parameters instead")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValueError("must not carry a user or password")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("has an invalid port") from None
    host = parts.hostname or ""
    if not host:
        raise ValueError("needs a host")
    if not host.isascii():
        raise ValueError("host must be ASCII (write an international name in punycode)")
    address = _address(host)
    if address is not None:
        if address.is_multicast or not address.is_global:
            raise ValueError("must not point at a loopback, private, link-local, "
                             "unspecified or multicast address")  # fmt: skip
    elif not dns_name(host):
        raise ValueError("host must be a DNS name or an IP address")
    elif host.removesuffix(".") == "localhost" or host.removesuffix(".").endswith(".localhost"):
        raise ValueError("must not point at localhost")
    if hosts and not any(_on(host, suffix) for suffix in hosts):
        raise ValueError("host is not on CALLSTREAMS_STREAM_HOSTS")
    return url


def _on(host: str, suffix: str) -> bool:
    host, suffix = host.lower().removesuffix("."), suffix.lower().removesuffix(".")
    return host == suffix or host.endswith("." + suffix)
