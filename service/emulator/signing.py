"""How Twilio signs the webhooks it sends (REFERENCE.md section B), written for the
emulator alone: it shares no code with the service it is there to check.

The signed text is the requested URL followed by each POST field's name and value,
fields in code-point order of their names, with no delimiters; the signature is
HMAC-SHA1 of it, keyed with the account's auth token, in standard Base64.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping


def twilio_signature(url: str, fields: Mapping[str, str], auth_token: str) -> str:
    text = url
    for name in sorted(fields):
        text += name + fields[name]
    mac = hmac.new(auth_token.encode("utf-8"), text.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")
