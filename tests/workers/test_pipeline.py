"""The pipeline called directly, as the task calls it (no broker)."""

import dataclasses
import logging
import threading
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from api.services import jobs as job_rules
from db.models.job import SUCCEEDED
from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from tasks import generation
from tests import rows
from tests.fakes.services import wait_until
from tests.workers.test_admission import Broker, make_jobs, make_user
from tests.workers.test_metering import ledger
from workers import admission, job_stream, metrics, pipeline, queue_position
from workers.providers.base import Completion


class SoftTimeLimit(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded, which the task passes in."""


class Raising:
    name = "raising"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def complete(self, request, on_delta=None) -> Completion:
        raise self.error


def make_job(tool="text", input=None) -> uuid.UUID:
    return rows.queued_job(
        tool=tool,
        input=input or {"prompt": "hello"},
        name="Grace",
        profile={"career_stage": "career changer"},
    )


def load(job_id):
    with session_scope() as session:
        return jobs.get(session, job_id=job_id)


def test_a_job_runs_once_and_records_output_and_usage(settings, fake_openai):
    job_id = make_job(input={"prompt": "Say hi"})
    assert pipeline.run_job(job_id, settings=settings).status == "succeeded"
    assert pipeline.run_job(job_id, settings=settings) is None  # a second delivery does nothing
    job = load(job_id)
    assert job.output == {"text": "Echo: Say hi"} and job.input_tokens > 0 and job.cost_micros > 0
    assert len(fake_openai.requests) == 1
    system = fake_openai.requests[0]["messages"][0]["content"]
    assert "Grace" in system and "career changer" in system  # personalised from the profile


def test_the_waiting_client_is_told_before_the_owners_next_job_is_sent(settings, fake_openai, monkeypatch):
    owner = make_user("free")
    first = make_jobs(owner, 2)
    admission.admit(owner, Broker())  # both slots taken
    make_jobs(owner, 1)  # waits for one
    told = []

    def admit(user_id, send):
        told.extend(event.type for event in job_stream.read(get_redis(), first[0]))
        return admission.Admitted()

    monkeypatch.setattr(admission, "admit", admit)
    assert generation.run_generation.run(str(first[0])) == "succeeded"
    assert told and told[-1] == job_stream.DONE


def test_a_job_that_runs_moves_its_queue_up_and_its_success_is_timed(settings, fake_openai):
    """Both go out with the job's events (job_stream.publish_all's `also`)."""
    redis = get_redis()
    first, second = make_job(), make_job()
    job = load(second)
    for job_id in (first, second):
        queue_position.sent(redis, job_id, queue=job.queue)

    def ahead() -> int:
        where = {"queue": job.queue, "tool": job.tool, "model": job.model, "held_ahead": None}
        return queue_position.place(redis, job_id=second, **where).ahead

    assert ahead() == 1
    assert pipeline.run_job(first, settings=settings).status == "succeeded"
    assert ahead() == 0
    assert float(redis.hget(queue_position.RUN_SECONDS, f"{job.tool}:{job.model}")) > 0


def test_a_finished_job_is_counted_before_its_done_event_goes_out(settings, fake_openai, monkeypatch):
    """A worker killed while telling the stream's readers (a Redis round trip, or an
    outage's timeout) has already counted the job it recorded."""
    job_id = make_job()
    labels = {"tool": "text", "status": "succeeded", "code": ""}
    before = metrics.registry().get_sample_value("conveyor_jobs_finished_total", labels) or 0.0
    counted_when_told = []
    publish_all = job_stream.publish_all

    def told(redis, job_id, items, **others):
        if any(type == job_stream.DONE for type, _ in items):
            counted_when_told.append(
                metrics.registry().get_sample_value("conveyor_jobs_finished_total", labels)
            )
        return publish_all(redis, job_id, items, **others)

    monkeypatch.setattr(job_stream, "publish_all", told)
    assert pipeline.run_job(job_id, settings=settings).status == "succeeded"
    assert counted_when_told == [before + 1]


class Streaming:
    """Streams its pieces at once: the first goes out alone, the rest is held (within the
    batching interval) until the job ends."""

    name = "streaming"

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def complete(self, request, on_delta=None) -> Completion:
        for piece in self.pieces:
            on_delta(piece)
        return Completion(text="".join(self.pieces), model=request.model, input_tokens=3, output_tokens=4)


def test_every_streamed_piece_reaches_the_stream_in_order_before_done(settings):
    job_id = make_job()
    provider = Streaming(["Once ", "upon ", "a ", "time"])
    assert pipeline.run_job(job_id, settings=settings, provider=provider).status == "succeeded"
    told = [(event.type, event.data) for event in job_stream.read(get_redis(), job_id)]
    assert [type for type, _ in told] == [
        job_stream.STATUS,
        job_stream.DELTA,
        job_stream.DELTA,
        job_stream.DONE,
    ]
    assert "".join(data["text"] for type, data in told if type == job_stream.DELTA) == "Once upon a time"
    assert told[-1][1] == {"status": "succeeded", "error": None}
    assert 0 < get_redis().ttl(job_stream.stream_key(job_id)) <= job_stream.TTL_SECONDS


def test_the_soft_time_limit_ends_the_job_timeout(settings):
    job_id = make_job()
    finished = pipeline.run_job(
        job_id, settings=settings, provider=Raising(SoftTimeLimit()), timeout_errors=(SoftTimeLimit,)
    )
    job = load(job_id)
    assert finished.status == "failed" and job.error_code == "timeout"
    assert str(settings.job_soft_time_limit) in job.error_message
    assert job.lease_until is None


def test_an_unexpected_error_fails_the_job_and_is_raised(settings):
    job_id = make_job()
    with pytest.raises(ZeroDivisionError):
        pipeline.run_job(job_id, settings=settings, provider=Raising(ZeroDivisionError()))
    job = load(job_id)
    assert job.status == "failed" and job.error_code == "internal_error"
    assert "ZeroDivision" not in job.error_message  # internals stay in the log


def test_the_offline_provider_says_so_in_its_result(settings):
    import dataclasses

    job_id = make_job(input={"prompt": "Plan my week"})
    offline = dataclasses.replace(settings, ai_provider="offline")
    assert pipeline.run_job(job_id, settings=offline).status == "succeeded"
    job = load(job_id)
    assert "offline" in job.output["text"].lower() and job.cost_micros == 0


def test_the_task_runs_the_pipeline_for_an_id(fake_openai):
    from tasks.generation import run_generation

    job_id = make_job(input={"prompt": "via the task"})
    assert run_generation.run(str(job_id)) == "succeeded"
    assert load(job_id).output == {"text": "Echo: via the task"}


def test_a_job_whose_tool_was_removed_fails_and_is_counted_finished_once(settings):
    job_id = make_job(tool="retired-tool")  # accepted while the tool existed
    labels = {"tool": "retired-tool", "status": "failed", "code": "invalid_request"}
    before = metrics.registry().get_sample_value("conveyor_jobs_finished_total", labels) or 0.0

    assert pipeline.run_job(job_id, settings=settings) is None
    assert pipeline.run_job(job_id, settings=settings) is None  # a second delivery: already final
    job = load(job_id)
    assert (job.status, job.error_code) == ("failed", "invalid_request")
    assert job.error_message == "The tool 'retired-tool' no longer exists."
    assert metrics.registry().get_sample_value("conveyor_jobs_finished_total", labels) == before + 1


def run_in_thread(job_id, settings) -> tuple[threading.Thread, dict]:
    """Run the pipeline in a thread of its own, as a worker does; `ended["finished"]` is its result."""
    ended = {}
    thread = threading.Thread(
        target=lambda: ended.update(finished=pipeline.run_job(job_id, settings=settings)), daemon=True
    )
    thread.start()
    return thread, ended


def cancel(job_id) -> None:
    """As `POST /jobs/<id>/cancel` does: the row's cancel_requested_at and the Redis flag."""
    with session_scope() as session:
        assert job_rules.cancel_job(session, jobs.get(session, job_id=job_id)).cancel_requested_at


def test_a_cancel_stops_a_call_still_waiting_for_its_first_token(settings, fake_openai):
    patient = dataclasses.replace(settings, openai_timeout=30.0)  # the provider may take 30 s
    job_id = make_job(input={"prompt": "[[hang]] Take your time"})
    thread, ended = run_in_thread(job_id, patient)
    wait_until(lambda: fake_openai.requests, 10, message="the provider call")

    cancel(job_id)
    thread.join(timeout=10)

    assert not thread.is_alive(), "the cancel did not stop the call"
    assert ended["finished"].status == "canceled"
    job = load(job_id)
    assert job.status == "canceled" and job.error_code == "canceled" and job.output is None
    assert len(fake_openai.requests) == 1  # not retried


def test_a_cancel_between_pieces_keeps_the_text_streamed_so_far(settings, fake_openai):
    patient = dataclasses.replace(settings, openai_timeout=30.0)
    job_id = make_job(input={"prompt": "[[slow:2]] a reply of many words, each piece two seconds apart"})
    thread, ended = run_in_thread(job_id, patient)

    def streamed() -> str:
        return "".join(
            event.data["text"]
            for event in job_stream.read(get_redis(), job_id)
            if event.type == job_stream.DELTA
        )

    first = wait_until(streamed, 10, interval=0.02, message="the first piece")
    cancel(job_id)
    thread.join(timeout=10)

    assert not thread.is_alive(), "the cancel did not stop the call"
    assert ended["finished"].status == "canceled"
    job = load(job_id)
    assert job.error_code == "canceled"
    assert job.output == {"text": first}  # the next piece was still two seconds away
    assert job.output_tokens > 0  # charged for what was generated
    assert streamed() == first
    assert len(fake_openai.requests) == 1


def test_a_call_stops_without_writing_when_its_job_is_no_longer_ours(settings, fake_openai, caplog):
    patient = dataclasses.replace(settings, openai_timeout=30.0)
    job_id = make_job(input={"prompt": "[[hang]] Take your time"})
    thread, ended = run_in_thread(job_id, patient)
    wait_until(lambda: fake_openai.requests, 10, message="the provider call")

    with caplog.at_level(logging.WARNING, logger="workers.pipeline"):
        with session_scope() as session:  # finished by another delivery
            assert jobs.finish(
                session, job_id=job_id, outcome=jobs.Outcome(SUCCEEDED, output={"text": "by another"})
            )
        thread.join(timeout=10)  # the lease is renewed, and found lost, every 2 s

    assert not thread.is_alive(), "losing the lease did not stop the call"
    assert ended["finished"] is None
    assert "lease lost" in caplog.text
    assert load(job_id).output == {"text": "by another"}
    assert len(fake_openai.requests) == 1


def test_an_outcome_rides_out_a_database_error_and_stands_once(settings, fake_openai, monkeypatch):
    """A database that drops the outcome's statement (a restart) is tried again after
    a wait, so an answer that was paid for is kept, and billed once."""
    job_id = make_job(input={"prompt": "Say hi"})
    real_finish, calls, waits = jobs.finish_run, [], []

    def finish_run(executor, **outcome):
        calls.append(outcome["job_id"])
        if len(calls) == 1:
            raise OperationalError(
                "UPDATE jobs …", {}, Exception("server closed the connection unexpectedly")
            )
        return real_finish(executor, **outcome)

    monkeypatch.setattr(jobs, "finish_run", finish_run)
    monkeypatch.setattr(pipeline.RECORD_RETRY, "sleep", waits.append)
    assert pipeline.run_job(job_id, settings=settings).status == SUCCEEDED
    assert calls == [job_id, job_id] and waits == [0.5]
    job = load(job_id)
    assert job.status == SUCCEEDED and job.output == {"text": "Echo: Say hi"}
    assert [row.billed for row in ledger(job_id)] == [True]
