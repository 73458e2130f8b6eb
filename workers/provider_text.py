"""The one rule for what workers keep of a provider's text."""

from __future__ import annotations

import re
from typing import Any

_NUL = "\x00"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable(value: Any) -> Any:
    """`value` as workers store and stream it: every NUL character removed, and every
    lone surrogate replaced by U+FFFD (the Unicode replacement character).

    A provider can send either one (an escaped `\\u0000` or `\\ud800` in its JSON), in
    streamed deltas, the final text or JSON output. Postgres cannot store a NUL, and a
    lone surrogate is not Unicode at all (Postgres, Redis and JSON readers all refuse
    it); a result already paid for is kept, cleaned, rather than failing the job. A NUL
    carries nothing a reader can see, so it goes; a lone surrogate stood for a
    character, so its place stays marked. Text, and dicts (keys too) and lists of it,
    are cleaned at any depth; anything else is returned unchanged. (Client input
    with either is refused instead, by api/input_gate.py.)"""
    if isinstance(value, str):
        if _NUL in value:
            value = value.replace(_NUL, "")
        return _LONE_SURROGATE.sub(REPLACEMENT, value) if not value.isascii() else value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value
