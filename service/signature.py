"""Twilio's `X-Twilio-Signature`: computing it and checking it.

Twilio signs the URL it requested followed by every POST field, sorted by
name, as name+value with no delimiter, with HMAC-SHA1 keyed by the auth token.
Behind a load balancer the URL must be rebuilt from the public base URL, not
from what the app sees; and for HTTPS voice callbacks Twilio drops the port
before signing, so both forms (with and without the default port) are tried.
"""

import base64
import functools
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

Params = Iterable[tuple[str, str]]

_DEFAULT_PORTS = {"https": 443, "http": 80}


def _signed_fields(params: Params) -> str:
    """What follows the URL in the signed string: names sorted, each name's distinct
    values sorted, as name+value without delimiters."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(by_name) for value in sorted(by_name[name]))


def _sign(text: str, auth_token: str) -> str:
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def compute_signature(url: str, params: Params, auth_token: str) -> str:
    """The Base64 HMAC-SHA1 Twilio would send for a POST of `params` to `url`."""
    return _sign(url + _signed_fields(params), auth_token)


@functools.lru_cache(maxsize=1024)  # a service sees few distinct webhook URLs
def url_variants(url: str) -> tuple[str, str]:
    """The URL without an explicit port and with the scheme's default port."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    # The host as written (Twilio signs it unchanged); an IPv6 literal keeps its brackets.
    host = hostport[: hostport.index("]") + 1] if hostport.startswith("[") else hostport
    host = host.partition(":")[0] if not host.startswith("[") else host
    prefix = f"{userinfo}@" if userinfo else ""
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(parts.scheme, 80)
    bare = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}"))
    return bare, with_port


def is_valid(url: str, params: Params, signature: str, auth_token: str) -> bool:
    """True when `signature` matches `url` as given or in its other port form.

    Each comparison is constant-time; the form that matched is no secret, so the
    other form is computed only when the first does not match."""
    fields = _signed_fields(params)
    expected = signature.encode()
    return any(
        hmac.compare_digest(_sign(candidate + fields, auth_token).encode(), expected)
        for candidate in dict.fromkeys((url, *url_variants(url)))
    )
