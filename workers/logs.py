"""Logging for every process (web, workers, beat), configured in one place.

`LOG_FORMAT=json` writes one JSON object a line (production's default, for a log
pipeline); `text` writes readable lines (development's default). Either way each
line carries the context it was written in: the HTTP request's id, and in a
worker the job and task. The context lives in contextvars, so it follows a
request's greenlet in the web and a task in a worker:

    web      X-Request-ID (the client's, or made here) ─┐
    submit   stored on the job row, sent as a task header┘─▶ worker lines of that job
    worker   a task sent while working on a job carries it on (the webhook delivery)
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import uuid
from typing import Any

from settings import Settings
from workers import compat

# Header names on the wire and in Celery task headers.
REQUEST_ID_HEADER = "X-Request-ID"
TASK_HEADER = "request_id"

CONTEXT_FIELDS = ("request_id", "job_id", "task", "task_id")
_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"conveyor_log_{name}", default=None) for name in CONTEXT_FIELDS
}

# What a client may send as its own request id: printable, short, no spaces or quotes,
# so it cannot forge log lines or smuggle markup into a log viewer.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", *CONTEXT_FIELDS}


def accept_request_id(value: str | None) -> str:
    """The client's X-Request-ID if it is sane, else a new one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def bind(**fields: object) -> dict[str, contextvars.Token]:
    """Put fields on every log line written from here on in this context (a request,
    a task); None leaves a field as it is. Returns tokens for `unbind`."""
    tokens = {}
    for name, value in fields.items():
        if value is not None:
            tokens[name] = _context[name].set(str(value))
    return tokens


def unbind(tokens: dict[str, contextvars.Token]) -> None:
    for name, token in tokens.items():
        _context[name].reset(token)


def clear() -> None:
    """Forget the context (a worker between two tasks)."""
    for var in _context.values():
        var.set(None)


def current(name: str) -> str | None:
    return _context[name].get()


def current_request_id() -> str | None:
    return _context["request_id"].get()


class ContextFilter(logging.Filter):
    """Copies the current context onto each record (unless `extra=` set it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _context.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class TextFormatter(logging.Formatter):
    """`2026-11-22 10:00:00,123 INFO workers.pipeline job_id=… started … [request_id=… task=…]`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={value}" for name in CONTEXT_FIELDS if (value := getattr(record, name, None))
        )
        if not context:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the context
        return f"{first} [{context}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the context, any `extra=`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        entry["process"] = record.process
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Where Celery logs, at INFO, each task it receives and each that succeeds.
CELERY_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


class CeleryTaskLines(logging.Filter):
    """Drops Celery's INFO lines (task received, task succeeded) for the tasks named:
    they log the same moments themselves, with the job's context (the generation
    task's `started` and outcome lines), and a gevent AI worker holding a thousand
    jobs would format and write each of them twice. Other tasks' lines, and every
    warning and error, are kept."""

    def __init__(self, task_names: tuple[str, ...]) -> None:
        super().__init__()
        self.task_names = frozenset(task_names)

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        return not (
            record.levelno == logging.INFO and isinstance(data, dict) and data.get("name") in self.task_names
        )


def quiet_celery_task_lines(task_names: tuple[str, ...]) -> None:
    """Install CeleryTaskLines for `task_names` on Celery's task loggers (once a process)."""
    for name in CELERY_TASK_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, CeleryTaskLines)]:
            logger.removeFilter(old)
        logger.addFilter(CeleryTaskLines(task_names))


def formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else TextFormatter()


def decorate(handler: logging.Handler, settings: Settings) -> None:
    """Give a handler made elsewhere (gunicorn's) the same format and context."""
    handler.setFormatter(formatter(settings))
    if not any(isinstance(existing, ContextFilter) for existing in handler.filters):
        handler.addFilter(ContextFilter())


def configure(settings: Settings, level: str | int | None = None) -> None:
    """Send every logger's lines to stderr in the configured format. Safe to call again
    (each app the tests make calls it): the handler it added last time is replaced."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_conveyor", False):
            root.removeHandler(handler)
    # Neither format shows where a line was logged from or by which thread: skip collecting
    # them for every record (the logging HOWTO's "Optimization"; under gevent, naming the
    # current thread is a lookup of its own). An access line is logged for every request.
    compat.skip_caller_lookup()
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler._conveyor = True  # type: ignore[attr-defined]
    decorate(handler, settings)
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)
    # The provider's HTTP client logs a line per request at INFO, repeating the job's own
    # lines and the provider metrics: shown when debugging, not in every job's log.
    logging.getLogger("httpx2").setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
