"""Where large outputs and exports live: S3 (`s3://bucket[/prefix]`) or the local
disk (`file:///path`), chosen by STORAGE_URL, behind one small interface.

    storage = get_storage(settings)
    storage.put(job_output_key(user.id, job.id), data, "application/json")
    url = storage.presigned_url(key, expires_in=900, filename="roadmap.pdf")

`delete_prefix(f"users/{user_id}/")` removes everything one user has stored
(account deletion calls it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from settings import Settings, get_settings
from workers.storage.base import (
    MAX_URL_TTL,
    ObjectNotFound,
    Storage,
    StorageError,
    export_key,
    job_output_key,
    user_prefix,
)

__all__ = [
    "MAX_URL_TTL",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "delete_prefix",
    "export_key",
    "get_storage",
    "job_output_key",
    "user_prefix",
]


def get_storage(settings: Settings | None = None) -> Storage:
    settings = settings or get_settings()
    return _build(
        settings.storage_url,
        settings.s3_endpoint_url,
        settings.s3_public_endpoint_url,
        settings.secret_key,
        settings.public_base_url,
    )


@lru_cache(maxsize=8)
def _build(
    storage_url: str, endpoint_url: str, public_endpoint_url: str, secret_key: str, public_base_url: str
) -> Storage:
    parts = urlsplit(storage_url)
    if parts.scheme == "s3":
        from workers.storage.s3 import S3Storage

        if not parts.netloc:
            raise ValueError(f"STORAGE_URL {storage_url!r} names no bucket (s3://bucket[/prefix])")
        return S3Storage(
            parts.netloc,
            prefix=parts.path,
            endpoint_url=endpoint_url or None,
            public_endpoint_url=public_endpoint_url or None,
        )
    if parts.scheme == "file":
        from workers.storage.local import FileStorage

        root = Path(unquote(parts.netloc + parts.path))
        return FileStorage(root, secret_key=secret_key, base_url=public_base_url)
    raise ValueError(f"STORAGE_URL {storage_url!r} must start with s3:// or file://")


def clear_cache() -> None:
    """Forget built clients (a forked worker must not share the parent's connections)."""
    _build.cache_clear()


def delete_prefix(prefix: str, *, settings: Settings | None = None) -> int:
    """Remove every stored object under `prefix` (e.g. `users/<id>/`); returns how many."""
    return get_storage(settings).delete_prefix(prefix)
