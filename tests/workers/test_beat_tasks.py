"""The beat's clean-ups and daily report: each run twice does its work once, and a
run that finds its lock held does nothing."""

import dataclasses
import datetime as dt
import logging
import os
import time
import uuid

import pytest
from sqlalchemy import select, text

import celeryconfig
from db.models import EmailOutbox, Export, Job, RefreshToken, User
from db.redis_client import get_redis
from db.repositories import exports, refresh_tokens, retention
from db.session import session_scope
from tasks import accounts as account_tasks
from tasks import cleanup as cleanup_tasks
from tasks import daily_report as daily_report_tasks
from tasks import email as email_tasks
from tasks import exports as export_tasks
from tasks import job_recovery as job_recovery_tasks
from tasks import usage as usage_tasks
from tasks import webhooks as webhook_tasks
from tests.fakes.services import wait_until
from tests.rows import age, finished_job, make_user
from workers import cleanup, daily_report, locks
from workers.storage import ObjectNotFound, export_key, get_storage, job_output_key


def stored_job(user_id, settings, *, days_old: float):
    job_id = finished_job(user_id, output=None)
    key = job_output_key(user_id, job_id)
    get_storage(settings).put(key, b'{"text": "big"}', "application/json")
    with session_scope() as session:
        session.get(Job, job_id).output_key = key
    age("jobs", job_id, days=days_old, columns=("finished_at",))
    return job_id, key


def built_export(user_id, job_id, settings, *, days_old: float):
    with session_scope() as session:
        export = exports.create(session, user_id=user_id, job_id=job_id, format="md")
        export_id = export.id
    with session_scope() as session:
        exports.start(session, export_id=export_id, stale_after=600, max_attempts=3)
        key = export_key(user_id, export_id, "text.md")
        exports.succeed(session, export_id=export_id, storage_key=key, filename="text.md", size_bytes=2)
    get_storage(settings).put(key, b"hi", "text/markdown")
    age("exports", export_id, days=days_old, columns=("finished_at",))
    return export_id, key


def exists(settings, key) -> bool:
    try:
        get_storage(settings).get(key)
        return True
    except ObjectNotFound:
        return False


def job(job_id):
    with session_scope() as session:
        return session.get(Job, job_id)


def test_results_past_their_plans_retention_are_removed_rows_and_objects(settings):
    free = make_user(plan="free")  # 7 days
    business = make_user(plan="business")  # 365 days
    old_inline = finished_job(free, output={"text": "old"})
    age("jobs", old_inline, days=8, columns=("finished_at",))
    fresh_inline = finished_job(free, output={"text": "fresh"})
    old_stored, old_key = stored_job(free, settings, days_old=8)
    kept_by_plan, kept_key = stored_job(business, settings, days_old=30)
    old_export, old_export_key = built_export(free, fresh_inline, settings, days_old=8)
    new_export, new_export_key = built_export(free, fresh_inline, settings, days_old=1)

    purged = cleanup_tasks.purge_expired_results()
    assert purged == 3  # two outputs and one export

    assert job(old_inline).output is None
    assert job(old_stored).output is None and job(old_stored).output_key is None
    assert not exists(settings, old_key) and not exists(settings, old_export_key)
    assert job(fresh_inline).output == {"text": "fresh"}
    assert job(kept_by_plan).output_key == kept_key and exists(settings, kept_key)
    with session_scope() as session:
        assert session.get(Export, old_export) is None
        assert session.get(Export, new_export) is not None and exists(settings, new_export_key)

    assert cleanup_tasks.purge_expired_results() == 0  # the second run finds nothing


def test_unverified_accounts_older_than_a_week_are_removed_with_their_data(settings):
    stale = make_user(verified=False)
    stale_job, stale_key = stored_job(stale, settings, days_old=0)
    age("users", stale, days=8, columns=("created_at",))
    recent = make_user(verified=False)
    age("users", recent, days=6, columns=("created_at",))
    verified = make_user(verified=True)
    admin = make_user(verified=False, role="admin")
    paying = make_user(verified=False, plan="pro")
    for kept in (verified, admin, paying):
        age("users", kept, days=30, columns=("created_at",))

    assert cleanup_tasks.purge_unverified_accounts() == 1
    with session_scope() as session:
        assert session.get(User, stale) is None and session.get(Job, stale_job) is None
        assert all(session.get(User, kept) is not None for kept in (recent, verified, admin, paying))
    assert not exists(settings, stale_key)

    assert cleanup_tasks.purge_unverified_accounts() == 0


def test_an_account_verified_after_it_was_listed_is_kept(settings):
    user_id = make_user(verified=False)
    age("users", user_id, days=8, columns=("created_at",))
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    with session_scope() as session:
        session.execute(text("UPDATE users SET email_verified_at = now() WHERE id = :id"), {"id": user_id})
    with session_scope() as session:
        assert (
            retention.delete_unverified(session, user_id=user_id, cutoff=cutoff, default_plan="free") is False
        )


def refresh_token(user_id, *, expired_days_ago: float, used: bool = False) -> uuid.UUID:
    """A refresh-token row (negative days: still valid for that long); `used`: refreshed once."""
    jti = uuid.uuid4()
    expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=expired_days_ago)
    with session_scope() as session:
        refresh_tokens.record(
            session, jti=jti, user_id=user_id, family_id=uuid.uuid4(), expires_at=expires_at
        )
        if used:
            session.get(RefreshToken, jti).used_at = expires_at - dt.timedelta(days=29)
    return jti


def token_rows() -> set[uuid.UUID]:
    with session_scope() as session:
        return set(session.scalars(select(RefreshToken.jti)))


def test_refresh_tokens_expired_beyond_the_retention_are_removed_in_batches(settings, monkeypatch, caplog):
    user_id = make_user()
    long_expired = {refresh_token(user_id, expired_days_ago=8, used=n % 2 == 0) for n in range(5)}
    recently_expired = refresh_token(user_id, expired_days_ago=6)
    live = refresh_token(user_id, expired_days_ago=-30)
    used_live = refresh_token(user_id, expired_days_ago=-29, used=True)  # reuse detection reads it
    batches = []
    delete_batch = refresh_tokens.delete_expired

    def delete_expired(session, **kwargs):
        batches.append(delete_batch(session, **kwargs))
        return batches[-1]

    monkeypatch.setattr(cleanup, "TOKEN_BATCH", 2)
    monkeypatch.setattr(cleanup.refresh_tokens, "delete_expired", delete_expired)
    with caplog.at_level(logging.INFO, logger="workers.cleanup"):
        assert cleanup_tasks.purge_expired_refresh_tokens() == 5

    assert batches == [2, 2, 1]  # a transaction per batch, not one for the whole backlog
    assert "removed 5 refresh tokens expired more than 7 days ago" in caplog.text
    assert token_rows() == {recently_expired, live, used_live}
    assert not token_rows() & long_expired
    assert cleanup_tasks.purge_expired_refresh_tokens() == 0


def test_a_refresh_token_still_valid_is_never_removed_whatever_the_cutoff(settings):
    user_id = make_user()
    expired = refresh_token(user_id, expired_days_ago=0.01)
    live = refresh_token(user_id, expired_days_ago=-1, used=True)
    no_grace = dataclasses.replace(settings, refresh_token_retention_days=0)
    # A clock a week fast puts the cutoff past the live token's expiry; the database's is used too.
    fast = dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    assert cleanup.purge_expired_refresh_tokens(no_grace, now=fast).refresh_tokens == 1
    assert token_rows() == {live} and expired not in token_rows()


def test_the_beat_purges_refresh_tokens_with_the_other_clean_ups(settings):
    schedule = {entry["task"]: entry["schedule"] for entry in celeryconfig.beat_schedule.values()}
    assert schedule["conveyor.housekeeping.purge_expired_refresh_tokens"] == settings.cleanup_interval


def yesterday_jobs():
    user_id = make_user()
    done = [
        finished_job(user_id, tool="text", output={"text": "x"}, tokens=(100, 50), cost_micros=40)
        for _ in range(3)
    ]
    failed = finished_job(
        user_id, tool="roadmap", status="failed", error_code="timeout", tokens=(10, 0), cost_micros=2
    )
    today = finished_job(user_id, tool="text", output={"text": "today"})
    # Yesterday (UTC) they were submitted, and waited 1, 2, 3 and 10 seconds to start.
    for job_id, wait in zip([*done, failed], (1, 2, 3, 10), strict=True):
        with session_scope() as session:
            session.execute(
                text(
                    "UPDATE jobs SET created_at = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' "
                    "- interval '12 hours', started_at = date_trunc('day', now() AT TIME ZONE 'UTC') "
                    "AT TIME ZONE 'UTC' - interval '12 hours' + make_interval(secs => :wait) WHERE id = :id"
                ),
                {"id": job_id, "wait": wait},
            )
    return today


def test_the_daily_report_goes_to_each_admin_once(settings):
    yesterday_jobs()
    admins = [make_user(role="admin", email=f"admin{n}@example.com") for n in range(2)]
    make_user(role="user")

    assert daily_report_tasks.daily_report() == 2
    assert daily_report_tasks.daily_report() == 0  # the same day's report is never sent twice

    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    with session_scope() as session:
        emails = session.scalars(select(EmailOutbox).where(EmailOutbox.template == "daily_report")).all()
    assert sorted(email.dedupe_key for email in emails) == sorted(f"daily_report:{day}:{a}" for a in admins)
    assert {email.to_address for email in emails} == {"admin0@example.com", "admin1@example.com"}
    report = emails[0].context["report"]
    assert report["date"] == day
    assert report["jobs_by_tool"] == {"text": {"succeeded": 3}, "roadmap": {"failed": 1}}
    assert report["failures_by_code"] == {"timeout": 1}
    assert report["tokens"] == {"input": 310, "output": 150} and report["cost_micros"] == 122
    latency = report["queue_latency_seconds"]
    assert latency["p50"] == pytest.approx(2.5) and 3 < latency["p95"] <= 10


def test_a_day_without_jobs_still_reports(settings):
    make_user(role="admin")
    assert len(daily_report.send_daily_report(day=dt.date(2020, 1, 1))) == 1
    with session_scope() as session:
        report = session.scalars(select(EmailOutbox)).one().context["report"]
    assert report["jobs_by_tool"] == {} and report["queue_latency_seconds"] == {"p50": None, "p95": None}


def test_a_lost_export_message_is_sent_again_once(settings, monkeypatch):
    user_id = make_user()
    job_id = finished_job(user_id, output={"text": "x"})
    with session_scope() as session:
        export_id = exports.create(session, user_id=user_id, job_id=job_id, format="md").id
    age("exports", export_id, days=1, columns=("created_at", "updated_at"))
    sent = []
    monkeypatch.setattr(export_tasks, "dispatch", sent.append)
    assert export_tasks.resend() == 1
    assert export_tasks.resend() == 0  # just re-sent: not again until it has been quiet again
    assert sent == [export_id]


@pytest.mark.parametrize(
    "task,lock",
    [
        (cleanup_tasks.purge_expired_results, "housekeeping.purge_expired_results"),
        (cleanup_tasks.purge_unverified_accounts, "housekeeping.purge_unverified_accounts"),
        (cleanup_tasks.purge_expired_refresh_tokens, "housekeeping.purge_expired_refresh_tokens"),
        (daily_report_tasks.daily_report, "housekeeping.daily_report"),
        (export_tasks.resend, "exports.resend"),
        (job_recovery_tasks.resend_queued, "maintenance.resend_queued"),
        (job_recovery_tasks.reap_leases, "maintenance.reap_leases"),
        (job_recovery_tasks.expire_overdue, "maintenance.expire_overdue"),
        (webhook_tasks.sweep, "webhooks.sweep"),
        (email_tasks.sweep, "email.sweep"),
        (account_tasks.sweep_deleted, "accounts.sweep_deleted"),
        (usage_tasks.rollup, "usage.rollup"),
    ],
)
def test_a_run_that_finds_the_lock_held_is_skipped(task, lock, settings):
    user_id = make_user(plan="free", role="admin")
    stale_output = finished_job(user_id, output={"text": "old"})
    age("jobs", stale_output, days=30, columns=("finished_at",))
    held = get_redis().lock(locks.lock_key(lock), timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert task() is None
    finally:
        held.release()
    assert job(stale_output).output == {"text": "old"}  # nothing was done
    assert task() is not None  # free again: it runs


def test_the_job_recovery_tasks_do_nothing_twice(settings):
    user_id = make_user()
    with session_scope() as session:
        session.execute(
            text(
                "INSERT INTO jobs (id, user_id, tool, input, model, queue, expires_at) "
                "VALUES (:id, :user, 'text', '{}', 'gpt-4o-mini', 'ai', now() - interval '1 minute')"
            ),
            {"id": uuid.uuid4(), "user": user_id},
        )
    assert job_recovery_tasks.expire_overdue() == 1
    assert job_recovery_tasks.expire_overdue() == 0
    assert job_recovery_tasks.reap_leases() == (0, 0)


def test_the_lock_helper_runs_work_and_frees_the_lock():
    calls = []
    assert locks.run_exclusively("test.work", lambda: calls.append(1) or "done", timeout=5) == "done"
    assert locks.run_exclusively("test.work", lambda: calls.append(2) or "again", timeout=5) == "again"
    assert calls == [1, 2]
    assert get_redis().exists(locks.lock_key("test.work")) == 0
    with (
        locks.exclusive("test.nested", timeout=5) as outer,
        locks.exclusive("test.nested", timeout=5) as inner,
    ):
        assert outer is True and inner is False


def test_a_run_killed_holding_a_lock_blocks_its_task_only_briefly():
    # Found by the soak (soak/): a reaper run SIGKILLed with its pool process kept the
    # reaper's lock for its whole 300 s timeout, and jobs of dead workers stayed running.
    import signal
    import subprocess
    import sys

    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal\n"
            "from workers import locks\n"
            "with locks.exclusive('test.killed', timeout=300, hold=1):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n",
        ],
        env=os.environ,
    )
    assert killed.returncode == -signal.SIGKILL
    assert locks.run_exclusively("test.killed", lambda: "ran", timeout=300) is None  # still held
    # Free again after its hold, not its 300 s timeout.
    wait_until(
        lambda: locks.run_exclusively("test.killed", lambda: "ran", timeout=300), 5, message="the lock"
    )


def test_a_lock_is_kept_while_its_run_goes_on_longer_than_its_hold():
    with locks.exclusive("test.long", timeout=60, hold=0.3) as held:
        assert held
        time.sleep(0.8)  # past the hold twice over: renewed meanwhile
        assert locks.run_exclusively("test.long", lambda: "ran", timeout=60) is None
    assert locks.run_exclusively("test.long", lambda: "ran", timeout=60) == "ran"
