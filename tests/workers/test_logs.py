"""The one log configuration: request ids, context on every line, JSON or text."""

import io
import json
import logging

import pytest

from settings import Settings
from workers import logs


@pytest.fixture
def capture():
    """A logger whose lines go through a handler decorated as configure() does."""
    logs.clear()  # code called directly by earlier tests (not as a task) leaves its context bound

    def make(log_format: str):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        logs.decorate(handler, Settings(log_format=log_format))
        logger = logging.getLogger(f"test.logs.{log_format}")
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        return logger, stream

    yield make
    logs.clear()


def test_a_sane_client_request_id_is_kept_and_anything_else_replaced():
    assert logs.accept_request_id("abc-123_x:y/z+=@.") == "abc-123_x:y/z+=@."
    for odd in (None, "", "two words", "x" * 129, "line\nbreak", '{"json": 1}'):
        made = logs.accept_request_id(odd)
        assert made != odd and len(made) == 32


def test_json_lines_carry_the_context_and_extra_fields(capture):
    logger, stream = capture("json")
    tokens = logs.bind(request_id="req-1", job_id="job-9")
    try:
        logger.info("job_id=%s started", "job-9", extra={"status": 202})
    finally:
        logs.unbind(tokens)
    logger.warning("after")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "job_id=job-9 started" and first["level"] == "INFO"
    assert (first["request_id"], first["job_id"], first["status"]) == ("req-1", "job-9", 202)
    assert first["logger"] == "test.logs.json" and first["time"].endswith("+00:00")
    assert "request_id" not in second and "job_id" not in second  # unbound again


def test_json_lines_keep_a_traceback_in_one_line(capture):
    logger, stream = capture("json")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "failed" and "ValueError: boom" in entry["exception"]


def test_text_lines_put_the_context_after_the_message(capture):
    logger, stream = capture("text")
    tokens = logs.bind(request_id="req-2", task="conveyor.generation.run")
    try:
        logger.info("hello")
    finally:
        logs.unbind(tokens)
    logger.info("plain")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("INFO test.logs.text hello [request_id=req-2 task=conveyor.generation.run]")
    assert second.endswith("INFO test.logs.text plain")


def test_configure_replaces_its_own_handler_rather_than_stacking(monkeypatch):
    root = logging.getLogger()
    level = root.level
    try:
        logs.configure(Settings(log_format="json"), level="ERROR")
        logs.configure(Settings(log_format="text"), level="ERROR")
        ours = [handler for handler in root.handlers if getattr(handler, "_conveyor", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.TextFormatter)
        assert root.level == logging.ERROR
    finally:
        root.setLevel(level)


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_the_http_clients_line_per_request_shows_only_when_debugging(level, shown):
    root, client = logging.getLogger(), logging.getLogger("httpx2")
    before = root.level, client.level
    try:
        logs.configure(Settings(log_format="json"), level=level)
        assert client.isEnabledFor(logging.INFO) is shown
        assert client.isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(before[0])
        client.setLevel(before[1])


def test_celery_lines_of_the_generation_task_are_dropped_and_others_kept():
    from tasks.generation import RUN

    stream = io.StringIO()
    logger = logging.getLogger(logs.CELERY_TASK_LOGGERS[1])
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        logs.quiet_celery_task_lines((RUN,))
        for name in (RUN, "conveyor.webhooks.deliver"):
            context = {"id": "t-1", "name": name, "runtime": 0.1, "return_value": None}
            logger.info("Task %(name)s[%(id)s] succeeded", context, extra={"data": context})
        failed = {"id": "t-2", "name": RUN}
        logger.error("Task %(name)s[%(id)s] raised", failed, extra={"data": failed})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert stream.getvalue().splitlines() == [
        "Task conveyor.webhooks.deliver[t-1] succeeded",
        f"Task {RUN}[t-2] raised",
    ]
