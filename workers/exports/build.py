"""Build an export: gather the rows (short session), render the file, store it,
then mark the export done (and, for the account export, queue its email in the
same transaction). Safe to run twice: the start is a compare-and-set, the file
goes to the same key, and the email's dedupe key names the export."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from db.models import Export, Job, User
from db.models.export import FAILED, SUCCEEDED
from db.repositories import conversations, exports, jobs, user_data, users
from db.session import session_scope
from settings import Settings, get_settings
from workers import outputs
from workers.exports import documents, render, usage
from workers.mail import outbox
from workers.storage import StorageError, export_key, get_storage
from workers.tools import get_tool

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
INTERNAL_ERROR = "internal_error"
OUTPUT_MISSING = "output_missing"
STORAGE_ERROR = "storage_error"


class ExportFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Outcome:
    status: str
    email_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class File:
    data: bytes
    filename: str
    content_type: str


def stale_after(settings: Settings) -> int:
    """Seconds a running export may stay silent before another delivery takes over."""
    return settings.job_hard_time_limit + 60


def build(export_id: uuid.UUID, *, settings: Settings | None = None) -> Outcome | None:
    """Build one delivery of an export; None when this delivery must not (done, or
    being built by a live worker)."""
    settings = settings or get_settings()
    with session_scope() as session:
        export = exports.start(
            session, export_id=export_id, stale_after=stale_after(settings), max_attempts=MAX_ATTEMPTS
        )
        if export is None:
            return None
        gathered = (
            _gather_account(session, export) if export.is_account_export else _gather_job(session, export)
        )
    try:
        file = _render(export, gathered, settings)
        key = export_key(export.user_id, export.id, file.filename)
        try:
            get_storage(settings).put(key, file.data, file.content_type)
        except StorageError:
            logger.warning("export_id=%s file not stored", export_id, exc_info=True)
            raise ExportFailed(
                STORAGE_ERROR, "The file could not be stored; ask for the export again."
            ) from None
    except ExportFailed as failure:
        return _fail(export_id, failure.code, failure.message)
    except Exception:
        _fail(export_id, INTERNAL_ERROR, "An unexpected error stopped the export.")
        raise
    with session_scope() as session:
        if not exports.succeed(
            session, export_id=export_id, storage_key=key, filename=file.filename, size_bytes=len(file.data)
        ):
            logger.warning("export_id=%s outcome dropped: no longer running", export_id)
            return None
        email_ids = (
            _email_link(session, export, key, file.filename, settings) if export.is_account_export else []
        )
    logger.info("export_id=%s succeeded format=%s bytes=%s", export_id, export.format, len(file.data))
    return Outcome(SUCCEEDED, email_ids)


def _fail(export_id: uuid.UUID, code: str, message: str) -> Outcome | None:
    with session_scope() as session:
        failed = exports.fail(session, export_id=export_id, code=code, message=message)
    logger.warning("export_id=%s failed code=%s", export_id, code)
    return Outcome(FAILED) if failed else None


def _email_link(
    session: Session, export: Export, key: str, filename: str, settings: Settings
) -> list[uuid.UUID]:
    user = users.get(session, user_id=export.user_id)
    if user is None:
        return []
    ttl = settings.download_url_ttl
    link = get_storage(settings).presigned_url(key, expires_in=ttl, filename=filename)
    email_id = outbox.enqueue(
        session,
        to=user.email,
        template="export_ready",
        context={
            "name": user.name,
            "link": link,
            "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl),
        },
        dedupe_key=f"export_ready:{export.id}",
    )
    return [email_id] if email_id else []


# ---------------------------------------------------------------- a job's output


@dataclass(frozen=True)
class JobSnapshot:
    job: Job


def _gather_job(session: Session, export: Export) -> JobSnapshot:
    job = jobs.get(session, job_id=export.job_id)
    if job is None:
        raise ExportFailed(OUTPUT_MISSING, "The job no longer exists.")
    return JobSnapshot(job)


def _render(export: Export, gathered: Any, settings: Settings) -> File:
    if export.is_account_export:
        return _account_zip(gathered, settings)
    job: Job = gathered.job
    output = outputs.load(job, settings=settings)
    if output is None:
        raise ExportFailed(OUTPUT_MISSING, "The job's output is no longer kept, so it cannot be exported.")
    tool = get_tool(job.tool)
    filename = f"{job.tool}-{str(job.id)[:8]}.{export.format}"
    if export.format == "json":
        document = json.dumps(_job_record(job, output), ensure_ascii=False, indent=2)
        return File(document.encode(), filename, render.JSON)
    if export.format == "md" and isinstance(output, dict) and set(output) == {"text"}:
        # A text output is already the model's Markdown: export it as written.
        return File(str(output["text"]).encode(), filename, render.MARKDOWN)
    document = documents.from_output(
        tool=job.tool, tool_title=tool.title if tool else job.tool, output=output, job_input=job.input
    )
    renderers = {
        "md": (render.to_markdown, render.MARKDOWN),
        "pdf": (render.to_pdf, render.PDF),
        "docx": (render.to_docx, render.DOCX),
    }
    renderer, content_type = renderers[export.format]
    return File(renderer(document), filename, content_type)


# ---------------------------------------------------------------- all of a user's data


@dataclass
class AccountSnapshot:
    user: dict[str, Any]
    jobs: list[Job]
    conversations: list[dict[str, Any]]
    usage: dict[str, Any]


def _gather_account(session: Session, export: Export) -> AccountSnapshot:
    user: User | None = users.get(session, user_id=export.user_id)
    if user is None:
        raise ExportFailed(INTERNAL_ERROR, "The account no longer exists.")
    own_jobs = user_data.jobs_of(session, user_id=user.id)
    threads = []
    for conversation in conversations.all_for_user(session, user_id=user.id):
        messages = conversations.messages(session, conversation_id=conversation.id)
        threads.append(
            {
                "id": str(conversation.id),
                "tool": conversation.tool,
                "title": conversation.title,
                "created_at": _iso(conversation.created_at),
                "messages": [
                    {
                        "role": message.role,
                        "content": message.content,
                        "job_id": str(message.job_id) if message.job_id else None,
                        "created_at": _iso(message.created_at),
                    }
                    for message in messages
                ],
            }
        )
    return AccountSnapshot(
        user={
            "id": str(user.id),
            "email": user.email,
            "name": user.name,
            "plan": user.plan,
            "role": user.role,
            "profile": user.profile,
            "email_verified_at": _iso(user.email_verified_at),
            "created_at": _iso(user.created_at),
        },
        jobs=own_jobs,
        conversations=threads,
        usage=usage.for_user(session, user_id=user.id),
    )


_README = """Your Conveyor data, exported {when}.

profile.json        your account and profile
jobs.json           every job you submitted: input, output, error, usage
conversations.json  your conversations with the coach and the tutor, message by message
usage.json          your usage ledger: every provider call, and billed totals by month
"""


def _account_zip(snapshot: AccountSnapshot, settings: Settings) -> File:
    # Outputs kept in storage are read now, after the database session was closed.
    job_records = [_job_record(job, outputs.load(job, settings=settings)) for job in snapshot.jobs]
    now = dt.datetime.now(dt.UTC)
    files = {
        "README.txt": _README.format(when=now.strftime("%Y-%m-%d %H:%M UTC")),
        "profile.json": _json(snapshot.user),
        "jobs.json": _json(job_records),
        "conversations.json": _json(snapshot.conversations),
        "usage.json": _json(snapshot.usage),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return File(buffer.getvalue(), f"conveyor-export-{now:%Y%m%d}.zip", "application/zip")


def _job_record(job: Job, output: Any) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "tool": job.tool,
        "status": job.status,
        "model": job.model,
        "input": job.input,
        "output": output,
        "error": None if job.error_code is None else {"code": job.error_code, "message": job.error_message},
        "attempt": job.attempt,
        "usage": {
            "input_tokens": job.input_tokens,
            "output_tokens": job.output_tokens,
            "cost_micros": job.cost_micros,
        },
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()
