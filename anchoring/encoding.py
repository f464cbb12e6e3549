"""Standard base64 (RFC 4648 section 4) as the C2SP formats use it, decoded strictly."""

from __future__ import annotations

import base64
import binascii


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode canonical padded base64; `ValueError` otherwise.

    Only the canonical form is accepted (no whitespace, no missing padding, no stray low bits), so
    every value has exactly one encoding and a signed text cannot be altered without notice.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not base64: {e}") from e
    if b64encode(data) != text:
        raise ValueError("not canonical base64")
    return data
