"""Identifiers of projects and devices: safe in MQTT topics, file names and URLs."""

from __future__ import annotations

import re

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: str, what: str) -> str:
    """Return `value` if it is a valid id (1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric)."""
    if not is_valid_id(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-64 characters A-Z a-z 0-9 . _ -, "
                         "starting with a letter or digit")
    return value
