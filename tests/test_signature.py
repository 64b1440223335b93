"""`X-Twilio-Signature`: Twilio's published test vectors, and agreement with twilio-python.

The vectors are those of REFERENCE.md §B (auth token `12345`). The properties
check that whatever the official `RequestValidator` signs, in either port form,
is accepted, that our signature is byte-for-byte theirs, and that any change to
what was signed is refused.
"""

import hashlib
import string
from collections.abc import Sequence
from typing import cast
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator, add_port, remove_port

from service.signature import compute_signature, is_valid, url_variants
from tests.helpers import twilio_signature

Pairs = list[tuple[str, str]]

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS: Pairs = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
]
PARAMS_DICT = dict(PARAMS)
JSON_BODY = '{"property": "value", "boolean": true}'
BODY_SHA256 = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"

VECTORS: list[tuple[str, Pairs, str]] = [
    (
        "https://example.com/myapp.php?foo=1&bar=2",
        [
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ],
        "L/OH5YylLD5NRKLltdqwSvS0BnU=",
    ),
    (URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w="),
    ("http://mycompany.com:80/myapp.php?foo=1&bar=2", PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", PARAMS, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    (
        URL,
        [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ],
        "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
    ),
    (f"{URL}&bodySHA256={BODY_SHA256}", [], "a9nBmqA0ju/hNViExpshrM61xv4="),
]


def signed_string(url: str, pairs: Sequence[tuple[str, str]]) -> str:
    """The text Twilio signs: the URL, then name+value of each distinct pair, sorted."""
    return url + "".join(name + value for name, value in sorted(set(pairs)))


# --- the published vectors -------------------------------------------------------------


@pytest.mark.parametrize(("url", "params", "expected"), VECTORS)
def test_vectors(url: str, params: Pairs, expected: str) -> None:
    assert compute_signature(url, params, TOKEN) == expected
    assert is_valid(url, params, expected, TOKEN)
    assert twilio_signature(url, params, TOKEN) == expected
    assert not is_valid(url, params, expected, "54321")


def test_vector_repeated_names_sign_every_distinct_value_in_order() -> None:
    _, params, expected = VECTORS[5]
    tail = "Digits1234Digits5678SidCA123SidAccountAC123"
    assert signed_string(URL, params) == URL + tail
    assert compute_signature(URL + tail, [], TOKEN) == expected
    # The exact duplicate pair counts once, and the order of arrival does not matter.
    assert compute_signature(URL, list(reversed(params[:4])), TOKEN) == expected


def test_vector_json_body_is_signed_through_its_hash_in_the_url() -> None:
    assert hashlib.sha256(JSON_BODY.encode()).hexdigest() == BODY_SHA256
    url, _, expected = VECTORS[6]
    assert RequestValidator(TOKEN).validate(url, JSON_BODY, expected)
    # The body itself is not part of the signed text: feeding it as a field is refused.
    assert not is_valid(url, [(JSON_BODY, "")], expected, TOKEN)


def test_the_documented_port_forms_of_a_vector_are_accepted() -> None:
    """Signed with `:443`, checked without it, and the other way round (REFERENCE.md §B)."""
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert is_valid(URL, PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=", TOKEN)
    assert is_valid(with_port, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", TOKEN)
    # http's default port is 80: the `:80` vector is accepted at the bare URL too.
    assert is_valid("http://mycompany.com/myapp.php?foo=1&bar=2", PARAMS,
                    "0ZXoZLH/DfblKGATFgpif+LLRf4=", TOKEN)  # fmt: skip
    # A non-default port is kept as Twilio sent it, or dropped (voice over HTTPS).
    assert is_valid("http://mycompany.com:1234/myapp.php?foo=1&bar=2", PARAMS,
                    compute_signature("http://mycompany.com/myapp.php?foo=1&bar=2", PARAMS, TOKEN),
                    TOKEN)  # fmt: skip


# --- with and without the default port ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "bare", "with_port"),
    [
        ("https://h.example.com/a?b=1", "https://h.example.com/a?b=1",
         "https://h.example.com:443/a?b=1"),
        ("https://h.example.com:443/a", "https://h.example.com/a", "https://h.example.com:443/a"),
        ("http://h.example.com/a", "http://h.example.com/a", "http://h.example.com:80/a"),
        ("http://h.example.com:80/a", "http://h.example.com/a", "http://h.example.com:80/a"),
        ("https://h.example.com:8443/a", "https://h.example.com/a",
         "https://h.example.com:8443/a"),
        ("https://[2001:db8::1]/a", "https://[2001:db8::1]/a", "https://[2001:db8::1]:443/a"),
    ],
)  # fmt: skip
def test_url_variants(url: str, bare: str, with_port: str) -> None:
    assert url_variants(url) == (bare, with_port)


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_default_port_is_optional_both_ways(scheme: str) -> None:
    port = {"https": 443, "http": 80}[scheme]
    bare = f"{scheme}://streams.example.com/twilio/call-status"
    with_port = f"{scheme}://streams.example.com:{port}/twilio/call-status"
    for signed_url in (bare, with_port):
        signature = compute_signature(signed_url, PARAMS, TOKEN)
        assert is_valid(bare, PARAMS, signature, TOKEN)
        assert is_valid(with_port, PARAMS, signature, TOKEN)


def test_the_port_forms_keep_the_case_of_the_host() -> None:
    signature = compute_signature("https://Streams.example.com:443/x", PARAMS, TOKEN)
    assert RequestValidator(TOKEN).validate("https://Streams.example.com/x", PARAMS_DICT,
                                            signature)  # fmt: skip
    assert is_valid("https://Streams.example.com/x", PARAMS, signature, TOKEN)


def test_another_port_is_not_the_default_one() -> None:
    signature = compute_signature("https://streams.example.com:443/x", PARAMS, TOKEN)
    assert not is_valid("https://streams.example.com:8443/x", PARAMS, signature, TOKEN)
    signature = compute_signature("https://streams.example.com:8443/x", PARAMS, TOKEN)
    assert not is_valid("https://streams.example.com/x", PARAMS, signature, TOKEN)


# --- tampering --------------------------------------------------------------------------

SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.mark.parametrize(
    "params",
    [
        [(n, v + "0") if n == "Digits" else (n, v) for n, v in PARAMS],  # a changed value
        [(n, "CA1234567890ABCDF") if n == "CallSid" else (n, v) for n, v in PARAMS],
        [(n, v) for n, v in PARAMS if n != "Caller"],  # a removed field
        [*PARAMS, ("CallStatus", "completed")],  # an added field
        [*PARAMS, ("Digits", "9")],  # an added value of a repeated field
        [*PARAMS, ("Extra", "")],  # an added empty field
        [(n.lower(), v) if n == "To" else (n, v) for n, v in PARAMS],  # a renamed field
        [(n, v + " ") if n == "From" else (n, v) for n, v in PARAMS],  # untrimmed whitespace
    ],
)
def test_changed_fields_are_refused(params: Pairs) -> None:
    assert not is_valid(URL, params, SIGNATURE, TOKEN)


@pytest.mark.parametrize(
    "url",
    [
        "http://mycompany.com/myapp.php?foo=1&bar=2",  # scheme
        "https://mycompany.com/myapp.php/?foo=1&bar=2",  # a trailing slash on the path
        "https://mycompany.com/other.php?foo=1&bar=2",  # path
        "https://mycompany.com/myapp.php?foo=1&bar=3",  # query value
        "https://mycompany.com/myapp.php?bar=2&foo=1",  # query order
        "https://mycompany.com/myapp.php?foo=1",  # query shortened
        "https://mycompany.com/myapp.php",  # query removed
        "https://evil.example.com/myapp.php?foo=1&bar=2",  # host
    ],
)
def test_changed_urls_are_refused(url: str) -> None:
    assert not is_valid(url, PARAMS, SIGNATURE, TOKEN)


@pytest.mark.parametrize("token", ["", "1234", "123456", "12346", " 12345"])
def test_another_token_is_refused(token: str) -> None:
    assert not is_valid(URL, PARAMS, SIGNATURE, token)


@pytest.mark.parametrize(
    "signature",
    ["", "RSOYDt4T1cUTdK1PDd93/VVr8B8", "rsoydt4t1cutdk1pdd93/vvr8b8=", SIGNATURE + "="],
)
def test_malformed_signatures_are_refused(signature: str) -> None:
    assert not is_valid(URL, PARAMS, signature, TOKEN)


# --- agreement with twilio-python, on random requests -----------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
NAMES = st.one_of(st.sampled_from(["CallSid", "CallStatus", "Digits", "From", "To"]), TEXT)
PAIRS = st.lists(st.tuples(NAMES, TEXT), max_size=12)
# HMAC pads a short key with NUL bytes, so "k" and "k\x00" are the same key: leave NUL out.
TOKENS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)
LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
HOSTS = st.one_of(
    st.lists(LABEL, min_size=1, max_size=4).map(".".join),
    st.just("127.0.0.1"),
    st.just("localhost"),
)
SEGMENT = TEXT.map(lambda s: quote(s, safe="-._~!$&'()*+,;=:@"))


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http"]))
    host = draw(HOSTS)
    port = draw(st.one_of(st.none(), st.sampled_from([80, 443, 8080]), st.integers(1, 65535)))
    path = "/" + "/".join(draw(st.lists(SEGMENT, max_size=4)))
    query = urlencode(draw(st.lists(st.tuples(TEXT, TEXT), max_size=4)))
    netloc = host if port is None else f"{host}:{port}"
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


@given(url=urls(), pairs=PAIRS, token=TOKENS)
def test_same_signature_as_twilio_python(url: str, pairs: Pairs, token: str) -> None:
    expected = twilio_signature(url, pairs, token)
    assert compute_signature(url, pairs, token) == expected
    assert is_valid(url, pairs, expected, token)


@given(url=urls(), pairs=PAIRS, token=TOKENS)
def test_plain_dict_fields_as_twilio_python(url: str, pairs: Pairs, token: str) -> None:
    fields = dict(pairs)  # the last value of a repeated name, as a plain dict keeps it
    expected = cast(str, RequestValidator(token).compute_signature(url, fields))
    assert compute_signature(url, fields.items(), token) == expected


@given(url=urls(), pairs=PAIRS, token=TOKENS)
def test_every_port_form_twilio_signs_is_accepted(url: str, pairs: Pairs, token: str) -> None:
    parsed = urlsplit(url)
    for signed_url in (cast(str, add_port(parsed)), cast(str, remove_port(parsed))):
        signature = twilio_signature(signed_url, pairs, token)
        assert is_valid(url, pairs, signature, token)


@given(url=urls(), pairs=PAIRS, token=TOKENS, data=st.data())
def test_tampered_fields_are_refused(
    url: str, pairs: Pairs, token: str, data: st.DataObject
) -> None:
    signature = twilio_signature(url, pairs, token)
    tampered = list(pairs)
    change_a_value: bool = data.draw(st.booleans(), label="change a value")
    if pairs and change_a_value:
        index = data.draw(st.integers(0, len(pairs) - 1), label="index")
        name, value = pairs[index]
        tampered[index] = (name, data.draw(TEXT.filter(lambda v: v != value), label="value"))
    else:
        tampered.append(data.draw(st.tuples(NAMES, TEXT), label="added"))
    changed = signed_string(url, tampered) != signed_string(url, pairs)
    # Without a delimiter, ("a", "bc") and ("ab", "c") sign the same text: only a change
    # to the signed text can be detected, and every such change must be.
    assert is_valid(url, tampered, signature, token) == (not changed)


@given(url=urls(), pairs=PAIRS, token=TOKENS, other=TOKENS)
def test_another_token_is_refused_on_random_requests(
    url: str, pairs: Pairs, token: str, other: str
) -> None:
    signature = twilio_signature(url, pairs, token)
    assert is_valid(url, pairs, signature, other) == (other == token)


@given(url=urls(), pairs=PAIRS, token=TOKENS, suffix=st.sampled_from(["x", "/", "%20"]))
def test_a_changed_path_is_refused_on_random_requests(
    url: str, pairs: Pairs, token: str, suffix: str
) -> None:
    signature = twilio_signature(url, pairs, token)
    parsed = urlsplit(url)
    changed = parsed._replace(path=parsed.path + suffix).geturl()
    assert not is_valid(changed, pairs, signature, token)
    other_scheme = parsed._replace(scheme="http" if parsed.scheme == "https" else "https")
    assert not is_valid(other_scheme.geturl(), pairs, signature, token)
