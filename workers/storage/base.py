"""The one small interface every object store implements, and the keys it holds.

Keys are made by the server (`users/<user id>/…`), never taken from a client, so
a key names one user's object and a prefix all of them.
"""

from __future__ import annotations

import re
import uuid
from typing import Protocol

MAX_URL_TTL = 900  # seconds: a download link works for at most 15 minutes

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._ -]+")


class StorageError(Exception):
    """The store could not do what was asked (unreachable, refused)."""


class ObjectNotFound(StorageError):
    """No object under this key (never stored, or removed by retention)."""


class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes:
        """The object's bytes; raises ObjectNotFound."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; no error if it is not there."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix`; returns how many."""
        ...

    def presigned_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A URL that downloads the object without credentials until `expires_in`
        seconds from now (at most MAX_URL_TTL); `filename` names the download."""
        ...


def user_prefix(user_id: uuid.UUID | str) -> str:
    return f"users/{user_id}/"


def job_output_key(user_id: uuid.UUID | str, job_id: uuid.UUID | str) -> str:
    return f"{user_prefix(user_id)}jobs/{job_id}/output.json"


def export_key(user_id: uuid.UUID | str, export_id: uuid.UUID | str, filename: str) -> str:
    return f"{user_prefix(user_id)}exports/{export_id}/{filename}"


def check_key(key: str) -> str:
    """Refuse a key that could escape its prefix (`..`, absolute, odd characters)."""
    if not _SAFE_KEY.fullmatch(key) or ".." in key.split("/"):
        raise ValueError(f"not a storage key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    # A prefix must name at least one whole directory: `users/<id>/`, never "" or "users".
    if not prefix.endswith("/"):
        raise ValueError(f"a prefix ends with '/': {prefix!r}")
    check_key(prefix.rstrip("/"))
    return prefix


def check_ttl(expires_in: int) -> int:
    if not 1 <= expires_in <= MAX_URL_TTL:
        raise ValueError(f"a download URL expires in 1 to {MAX_URL_TTL} seconds, not {expires_in}")
    return expires_in


def safe_filename(filename: str) -> str:
    """A download name that is safe in a Content-Disposition header."""
    cleaned = _UNSAFE_FILENAME.sub("_", filename).strip(" .") or "download"
    return cleaned[:120]
