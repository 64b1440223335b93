"""Twilio identifier patterns, checked on every input that carries one."""

import re

ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
STREAM_SID = re.compile(r"MZ[0-9a-fA-F]{32}")
API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")
# Stream names go into Twilio's stop path unencoded, so they stay URL-safe.
STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.~-]{0,63}")


def is_account_sid(value: str) -> bool:
    return ACCOUNT_SID.fullmatch(value) is not None


def is_call_sid(value: str) -> bool:
    return CALL_SID.fullmatch(value) is not None


def is_stream_sid(value: str) -> bool:
    return STREAM_SID.fullmatch(value) is not None


def is_stream_name(value: str) -> bool:
    return STREAM_NAME.fullmatch(value) is not None
