"""A bulk operation's run with no broker: it works through the jobs in order and resumes
from the last progress it recorded; a run that died (its lease lapsed) is sent again by
the sweep, and one that keeps dying ends `failed` with its counts as far as they got."""

import dataclasses
import datetime as dt
import uuid

from sqlalchemy import update

from db.models import BulkOperation
from db.models.bulk_operation import CANCEL
from db.repositories import audit, bulk_operations, jobs
from db.session import session_scope
from tests import rows
from workers import bulk_operations as runner


def operation_for(user: uuid.UUID, matched: int, **fields) -> uuid.UUID:
    with session_scope() as session:
        return bulk_operations.create(
            session,
            action=CANCEL,
            filter={"user": str(user)},
            actor_id=None,
            actor_email="ops@example.com",
            matched=matched,
            status="queued",
            **fields,
        ).id


def set_fields(operation_id: uuid.UUID, **fields) -> None:
    with session_scope() as session:
        session.execute(update(BulkOperation).where(BulkOperation.id == operation_id).values(**fields))


def load(operation_id: uuid.UUID) -> BulkOperation:
    with session_scope() as session:
        operation = bulk_operations.get(session, operation_id=operation_id)
        session.expunge(operation)
        return operation


def statuses(job_ids) -> list[str]:
    with session_scope() as session:
        return [jobs.get(session, job_id=job_id).status for job_id in job_ids]


def run(operation_id, settings, **extra):
    return runner.run(
        operation_id, settings=settings, send=lambda *a, **k: None, announce=lambda _: None, **extra
    )


def test_a_run_resumes_after_the_last_job_it_recorded(settings):
    user = rows.make_user()
    queued = [rows.queued_job(user) for _ in range(4)]
    operation_id = operation_for(user, 4)
    with session_scope() as session:
        second = jobs.get(session, job_id=queued[1])
        recorded = (second.created_at, second.id)
    # A run that died after recording two jobs (done) and whose lease lapsed.
    set_fields(
        operation_id,
        status="running",
        done=2,
        last_created_at=recorded[0],
        last_job_id=recorded[1],
        lease_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
    )

    assert run(operation_id, settings) == "succeeded"
    assert statuses(queued) == ["queued", "queued", "canceled", "canceled"]  # the first two: not again
    operation = load(operation_id)
    assert (operation.done, operation.skipped, operation.failed, operation.lease_until) == (4, 0, 0, None)


def test_a_run_leaves_an_operation_another_live_run_holds(settings):
    user = rows.make_user()
    queued = rows.queued_job(user)
    operation_id = operation_for(user, 1)
    set_fields(operation_id, status="running", lease_until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60))
    assert run(operation_id, settings) is None
    assert statuses([queued]) == ["queued"]


def test_a_run_out_of_time_records_its_place_and_lets_go(settings, monkeypatch):
    monkeypatch.setattr(runner, "CHUNK", 2)
    user = rows.make_user()
    queued = [rows.queued_job(user) for _ in range(5)]
    operation_id = operation_for(user, 5)
    assert run(operation_id, settings, budget=0) == runner.CONTINUE
    operation = load(operation_id)
    assert (operation.status, operation.done, operation.lease_until) == ("running", 2, None)
    assert run(operation_id, settings) == "succeeded"
    assert statuses(queued) == ["canceled"] * 5 and load(operation_id).done == 5


def test_the_sweep_resends_a_stalled_operation_then_fails_it(settings):
    settings = dataclasses.replace(settings, bulk_admin_lease_seconds=2)
    user = rows.make_user()
    operation_id = operation_for(user, 3)
    lapsed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    set_fields(operation_id, status="running", done=1, lease_until=lapsed)
    live = operation_for(user, 3)
    set_fields(live, status="running", lease_until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60))
    sent = []

    assert runner.resume_stalled(settings, sent.append) == (1, 0)
    assert sent == [operation_id]
    resent = load(operation_id)
    assert (resent.resumes, resent.lease_until) == (1, None)  # the next run may claim it at once

    set_fields(operation_id, resumes=runner.MAX_RESUMES, lease_until=lapsed)
    assert runner.resume_stalled(settings, sent.append) == (0, 1)
    operation = load(operation_id)
    assert operation.status == "failed" and operation.finished_at is not None
    assert "stopped" in operation.error and operation.done == 1
    with session_scope() as session:
        entries = audit.list_page(
            session, action="jobs.bulk_cancel", target_id=str(operation_id), after=None, limit=5
        )
        assert [entry.details["status"] for entry in entries] == ["failed"]
    assert load(live).status == "running"  # its run is alive


def test_an_operation_waiting_for_its_message_is_resent_without_counting_a_stall(settings):
    settings = dataclasses.replace(settings, bulk_admin_lease_seconds=2)
    user = rows.make_user()
    operation_id = operation_for(user, 3)  # queued: its message lost, or behind a long queue
    fresh = operation_for(user, 3)
    idle = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    set_fields(operation_id, updated_at=idle)
    sent = []

    assert runner.resume_stalled(settings, sent.append) == (1, 0)
    assert sent == [operation_id]  # not the one queued a moment ago
    assert (load(operation_id).resumes, load(operation_id).status) == (0, "queued")
    assert runner.resume_stalled(settings, sent.append) == (0, 0)  # not again within a lease
    assert fresh not in sent


def test_the_beat_resumes_stalled_operations_and_the_tasks_run_on_the_default_queue(settings):
    import celeryconfig

    schedule = {entry["task"]: entry["schedule"] for entry in celeryconfig.beat_schedule.values()}
    assert schedule["conveyor.admin.resume_bulk_operations"] == settings.maintenance_interval
    assert celeryconfig.task_routes["conveyor.admin.*"] == {"queue": "default"}


def test_a_bulk_cancel_sends_none_of_the_jobs_it_cancels_and_admits_the_owner_once_after(settings):
    user = rows.make_user()
    held = [rows.queued_job(user) for _ in range(6)]  # waiting for the owner's running limit
    operation_id = operation_for(user, 6)
    later = rows.queued_job(user)  # made after the operation: not in it
    sent = []
    assert (
        runner.run(
            operation_id,
            settings=settings,
            send=lambda job_id, **_: sent.append(job_id),
            announce=lambda _: None,
        )
        == "succeeded"
    )
    assert statuses(held) == ["canceled"] * 6
    assert sent == [later]  # each cancel freed a slot, but the next job got it only at the end
