"""Downloads: presigned URLs for stored files, and the API's own download route
for local-disk storage (`GET /api/v1/files/<token>`), which stands in for S3's
presigned URLs: no credentials, a signed key, an expiry."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

from api.services.errors import Forbidden, Gone, NotFound
from db.models import Job
from settings import Settings
from workers import outputs
from workers.storage import ObjectNotFound, get_storage
from workers.storage.local import LinkExpired, LinkInvalid, read_token

_TYPES = {".md": "text/markdown; charset=utf-8", ".json": "application/json", ".zip": "application/zip"}


@dataclass(frozen=True)
class Download:
    data: bytes
    content_type: str
    filename: str


def output_url(job: Job, *, settings: Settings) -> str | None:
    """A fresh presigned URL for a job's stored output (each call makes a new one,
    valid DOWNLOAD_URL_TTL seconds); None when the output is in the row."""
    link = outputs.download_link(job, settings=settings)
    return link.url if link else None


def open_download(token: str, *, settings: Settings) -> Download:
    try:
        link = read_token(settings.secret_key, token)
    except LinkExpired:
        raise Gone("This download link has expired; ask the API for a fresh one.") from None
    except LinkInvalid:
        raise Forbidden("This download link is not valid.") from None
    try:
        data = get_storage(settings).get(link.key)
    except ObjectNotFound:
        raise NotFound("This file no longer exists.") from None
    filename = link.filename or link.key.rsplit("/", 1)[-1]
    return Download(data=data, content_type=_content_type(filename), filename=filename)


def _content_type(filename: str) -> str:
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return _TYPES.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"
