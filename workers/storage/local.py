"""Storage on the local disk (`file:///path`), for `make run` and single-host setups.

There is no object server to presign for, so the API serves downloads itself:
`GET /api/v1/files/<token>`, where the token is a signed reference to the key
that carries its own expiry. Like an S3 presigned URL it needs no credentials,
stops working when it expires, and cannot be altered to name another key.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

from workers.storage.base import ObjectNotFound, check_key, check_prefix, check_ttl, safe_filename

FILES_PATH = "/api/v1/files/"
_SALT = "conveyor.storage.file-link"


class LinkInvalid(Exception):
    """The token was not made by this server, or was altered."""


class LinkExpired(Exception):
    """The token is genuine but its time is up."""


@dataclass(frozen=True)
class Link:
    key: str
    filename: str | None


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=_SALT)


def make_token(secret_key: str, key: str, *, expires_at: float, filename: str | None = None) -> str:
    return _serializer(secret_key).dumps({"k": key, "f": filename, "x": round(expires_at, 3)})


def read_token(secret_key: str, token: str, *, now: float | None = None) -> Link:
    """The key a download token names; raises LinkInvalid or LinkExpired."""
    try:
        payload = _serializer(secret_key).loads(token)
        key, filename, expires_at = payload["k"], payload["f"], float(payload["x"])
        check_key(key)
    except (BadSignature, KeyError, TypeError, ValueError):
        raise LinkInvalid("This download link is not valid.") from None
    if (now if now is not None else time.time()) >= expires_at:
        raise LinkExpired("This download link has expired.")
    return Link(key=key, filename=filename)


class FileStorage:
    def __init__(self, root: str | Path, *, secret_key: str, base_url: str) -> None:
        self.root = Path(root)
        self.secret_key = secret_key
        self.base_url = base_url.rstrip("/")

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside it and rename, so a reader never sees half a file.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            Path(temporary).replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(temporary).unlink()
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self._path(key).unlink()

    def delete_prefix(self, prefix: str) -> int:
        directory = self.root / check_prefix(prefix)
        if not directory.is_dir():
            return 0
        count = sum(1 for path in directory.rglob("*") if path.is_file())
        shutil.rmtree(directory, ignore_errors=True)
        return count

    def presigned_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        check_key(key)
        token = make_token(
            self.secret_key,
            key,
            expires_at=time.time() + check_ttl(expires_in),
            filename=safe_filename(filename) if filename else None,
        )
        return f"{self.base_url}{FILES_PATH}{token}"
