"""Metering: every path that ends a job settles its quota reservation once, the
ledger gets one row per provider call (billed for the attempt that produced the
result), and the daily roll-up always equals the ledger."""

import datetime as dt
import random
import threading
import time
import uuid

from sqlalchemy import func, select, text, update

from db.models import DailyJobCount, Job, UsageDaily, UsageLedger
from db.models.job import QUEUED, SUCCEEDED
from db.redis_client import get_redis
from db.repositories import jobs, submit_checks, usage
from db.session import session_scope
from tests import rows
from workers import cancellation, job_recovery, metering, pipeline
from workers.tools import get_tool

ESTIMATE = 2_500


def make_user() -> uuid.UUID:
    return rows.make_user(verified=False)


def submit(
    user_id: uuid.UUID, *, tool: str = "text", input=None, estimate: int = ESTIMATE, **fields
) -> uuid.UUID:
    """What POST /jobs does to the counters: count, reserve, insert, in one transaction."""
    with session_scope() as session:
        checked = submit_checks.check(
            session, user_id=user_id, jobs_limit=100, estimate=estimate, token_limit=1_000_000
        )
        assert checked.jobs_today and checked.quota
        return jobs.create(
            session,
            user_id=user_id,
            tool=tool,
            input=input or {"prompt": "hello"},
            model="gpt-4o-mini",
            queue="ai",
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            reserved_tokens=estimate,
            **fields,
        ).id


def counter(user_id: uuid.UUID) -> tuple[int, int]:
    with session_scope() as session:
        quota = usage.get_quota(session, user_id=user_id, limit=1_000_000)
        return quota.used, quota.reserved


def ledger(job_id: uuid.UUID) -> list[UsageLedger]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(UsageLedger).where(UsageLedger.job_id == job_id).order_by(UsageLedger.call_index)
            )
        )


def load(job_id: uuid.UUID) -> Job:
    with session_scope() as session:
        return jobs.get(session, job_id=job_id)


def test_a_succeeded_job_replaces_its_reservation_with_what_it_used(settings, fake_openai):
    user_id = make_user()
    job_id = submit(user_id)
    other = submit(user_id)  # still queued: its reservation stays
    assert counter(user_id) == (0, 2 * ESTIMATE)

    assert pipeline.run_job(job_id, settings=settings).status == "succeeded"
    job = load(job_id)
    used = job.input_tokens + job.output_tokens
    assert used > 0 and counter(user_id) == (used, ESTIMATE)

    [row] = ledger(job_id)
    assert (row.user_id, row.tool, row.attempt, row.call_index, row.billed) == (user_id, "text", 1, 0, True)
    assert (row.input_tokens, row.output_tokens, row.cost_micros) == (
        job.input_tokens,
        job.output_tokens,
        job.cost_micros,
    )
    assert row.model.startswith("gpt-4o-mini")
    assert pipeline.run_job(job_id, settings=settings) is None  # a second delivery settles nothing
    assert counter(user_id) == (used, ESTIMATE) and len(ledger(job_id)) == 1
    assert other


def test_a_failed_job_gives_its_reservation_back_and_is_not_billed(settings, fake_openai):
    user_id = make_user()
    job_id = submit(user_id, input={"prompt": "nope [[fail:400]]"})
    assert pipeline.run_job(job_id, settings=settings).status == "failed"
    assert counter(user_id) == (0, 0)
    assert ledger(job_id) == []  # the provider refused: no call completed


def test_a_json_tool_that_never_validates_records_both_calls_unbilled(settings, fake_openai):
    user_id = make_user()
    job_id = submit(
        user_id, tool="roadmap", input={"goal": "Open a bakery [[invalid-json]]", "timeline": "1_year"}
    )
    assert pipeline.run_job(job_id, settings=settings).status == "failed"
    assert load(job_id).error_code == "invalid_output"
    assert [(r.call_index, r.billed) for r in ledger(job_id)] == [(0, False), (1, False)]
    assert counter(user_id) == (0, 0)


def test_a_repaired_json_job_bills_both_calls(settings, fake_openai):
    user_id = make_user()
    job_id = submit(
        user_id, tool="roadmap", input={"goal": "Open a bakery [[invalid-json:1]]", "timeline": "1_year"}
    )
    assert pipeline.run_job(job_id, settings=settings).status == "succeeded"
    job, rows = load(job_id), ledger(job_id)
    assert [(r.call_index, r.billed) for r in rows] == [(0, True), (1, True)]
    assert sum(r.input_tokens for r in rows) == job.input_tokens
    assert sum(r.cost_micros for r in rows) == job.cost_micros  # the job and its ledger agree
    assert counter(user_id) == (job.input_tokens + job.output_tokens, 0)


def test_a_canceled_job_is_billed_for_what_it_wrote(settings, fake_openai):
    user_id = make_user()
    # ~2 s of streaming: the cancel (0.3 s in) is seen at the monitor's next tick, 0.5 s
    # at most, well before the end.
    words = " ".join(f"w{n}" for n in range(60))
    job_id = submit(user_id, input={"prompt": f"{words} [[slow:0.1]]"})

    def cancel_soon():
        deadline = time.monotonic() + 10
        while load(job_id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        with session_scope() as session:
            jobs.request_cancel(session, job_id=job_id)
        cancellation.request(get_redis(), job_id)

    thread = threading.Thread(target=cancel_soon)
    thread.start()
    assert pipeline.run_job(job_id, settings=settings).status == "canceled"
    thread.join()
    job = load(job_id)
    [row] = ledger(job_id)
    assert row.billed and row.output_tokens == job.output_tokens
    assert counter(user_id) == (job.input_tokens + job.output_tokens, 0)


def test_cancel_expiry_and_the_reaper_release_reservations(settings):
    user_id = make_user()
    canceled, expired, lost = submit(user_id), submit(user_id), submit(user_id)
    assert counter(user_id) == (0, 3 * ESTIMATE)
    with session_scope() as session:
        assert jobs.cancel_queued(session, job_id=canceled)
    assert counter(user_id) == (0, 2 * ESTIMATE)

    with session_scope() as session:
        session.execute(
            update(Job).where(Job.id == expired).values(expires_at=func.now() - dt.timedelta(seconds=1))
        )
    assert job_recovery.expire_overdue() == 1
    assert counter(user_id) == (0, ESTIMATE)

    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == lost)
            .values(
                status="running",
                attempt=settings.job_max_attempts,
                lease_until=func.now() - dt.timedelta(seconds=1),
            )
        )
        assert jobs.fail_lost(session, job_id=lost, max_attempts=settings.job_max_attempts)
    assert counter(user_id) == (0, 0)


def test_a_withdrawn_job_gives_back_its_reservation_and_its_place_in_the_day():
    user_id = make_user()
    job_id = submit(user_id)
    with session_scope() as session:
        assert jobs.delete_unstarted(session, job_id=job_id)
    assert counter(user_id) == (0, 0)
    with session_scope() as session:
        assert session.scalar(select(DailyJobCount.jobs).where(DailyJobCount.user_id == user_id)) == 0


def count_and_reserve(
    user_id: uuid.UUID, *, estimate: int = 1, jobs_limit: int = 100, token_limit: int = 1000
):
    with session_scope() as session:
        checked = submit_checks.check(
            session, user_id=user_id, jobs_limit=jobs_limit, estimate=estimate, token_limit=token_limit
        )
        return checked.jobs_today, checked.quota


def test_the_reservation_never_goes_over_the_limit():
    user_id = make_user()
    jobs_today, quota = count_and_reserve(user_id, estimate=600)
    assert jobs_today == 1 and (quota.limit, quota.used, quota.reserved, quota.remaining) == (
        1000,
        0,
        600,
        400,
    )
    jobs_today, quota = count_and_reserve(user_id, estimate=401)
    assert jobs_today == 2 and quota is None  # refused (a submit rolls back; this test commits)
    with session_scope() as session:
        quota = usage.get_quota(session, user_id=user_id, limit=1000)
    assert (quota.used, quota.reserved, quota.remaining) == (0, 600, 400)
    jobs_today, quota = count_and_reserve(user_id, estimate=400)
    assert quota is not None and quota.remaining == 0
    assert counter(user_id) == (0, 1000)


def test_the_days_job_count_stops_at_the_limit():
    user_id = make_user()
    for expected in (1, 2):
        assert count_and_reserve(user_id, jobs_limit=2)[0] == expected
    jobs_today, quota = count_and_reserve(user_id, jobs_limit=2)
    assert jobs_today is None and quota is not None  # refused; the tokens part alone went through
    with session_scope() as session:
        assert usage.jobs_today(session, user_id=user_id) == 2


def finish(job_id: uuid.UUID, attempt: usage.Attempt, *, billable: bool = True) -> bool:
    with session_scope() as session:
        return jobs.finish(
            session,
            job_id=job_id,
            outcome=jobs.Outcome(SUCCEEDED, output={"text": "done"}, ledger=attempt, billable=billable),
            from_statuses=(QUEUED,),
        )


def test_an_outcome_and_its_calls_are_recorded_together_once():
    user_id = make_user()
    job_id = submit(user_id)
    calls = [usage.Call("gpt-4o-mini", 10, 5, 5), usage.Call("gpt-4o", 20, 8, 90)]  # a call and its repair
    attempt = usage.Attempt(job_id, 1, user_id, "text", calls)

    assert finish(job_id, attempt)
    assert not finish(job_id, attempt)  # a second delivery: the job has finished; nothing is added

    rows = ledger(job_id)
    assert [
        (r.attempt, r.call_index, r.model, r.input_tokens, r.output_tokens, r.cost_micros) for r in rows
    ] == [
        (1, 0, "gpt-4o-mini", 10, 5, 5),
        (1, 1, "gpt-4o", 20, 8, 90),
    ]
    assert all(r.billed and r.user_id == user_id and r.tool == "text" for r in rows)


def test_calls_of_an_outcome_that_is_not_billed_are_kept_unbilled():
    user_id = make_user()
    job_id = submit(user_id)
    assert finish(
        job_id,
        usage.Attempt(job_id, 1, user_id, "text", [usage.Call("gpt-4o-mini", 10, 0, 1)]),
        billable=False,
    )
    assert [(r.attempt, r.billed) for r in ledger(job_id)] == [(1, False)]


def test_an_attempt_whose_outcome_was_dropped_is_recorded_unbilled(settings, fake_openai):
    user_id = make_user()
    job_id = submit(user_id)
    assert pipeline.run_job(job_id, settings=settings).status == "succeeded"
    late = usage.Attempt(job_id, 2, user_id, "text", [usage.Call("gpt-4o-mini", 7, 3, 3)])
    assert (
        pipeline._record(
            job_id, jobs.Outcome(SUCCEEDED, output={"text": "late"}, ledger=late, billable=True)
        ).done
        is False
    )
    assert [(r.attempt, r.billed) for r in ledger(job_id)] == [(1, True), (2, False)]


def test_estimates_cover_the_prompt_and_the_output_cap():
    tool = get_tool("text")
    short = metering.estimate_job_tokens(tool, {"prompt": "hi"}, {})
    long = metering.estimate_job_tokens(tool, {"prompt": "x" * 4000}, {"name": "Ada"})
    assert short > tool.max_output_tokens
    assert long - short >= 1000 - 1  # 4000 more characters is about 1000 more tokens


# ---------------------------------------------------------------- the roll-up


def add_ledger_rows(rng: random.Random, user_ids: list[uuid.UUID], count: int, days: list[dt.date]) -> None:
    tools = ["text", "roadmap", "brand", "tutor"]
    models = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"]
    calls = []
    for _ in range(count):
        job_id = uuid.uuid4()
        day = rng.choice(days)
        at = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)), tzinfo=dt.UTC)
        tool, billed = rng.choice(tools), rng.random() < 0.8
        for index in range(rng.choice((1, 1, 2))):
            model = rng.choice(models)
            tokens_in, tokens_out = rng.randrange(1, 5000), rng.randrange(0, 3000)
            calls.append(
                rows.usage_row(
                    rng.choice(user_ids),
                    job_id=job_id,
                    call_index=index,
                    tool=tool,
                    model=model,
                    tokens=(tokens_in, tokens_out),
                    cost_micros=rng.randrange(0, 50_000),
                    billed=billed,
                    at=at,
                )
            )
    rows.add_usage(*calls)


ROLLUP_MATCHES_LEDGER = text(
    """
    WITH ledger AS (
        SELECT user_id, (created_at AT TIME ZONE 'UTC')::date AS day, tool, model, billed,
               count(*) AS calls, count(DISTINCT job_id) AS jobs, sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens, sum(cost_micros) AS cost_micros
        FROM usage_ledger GROUP BY 1, 2, 3, 4, 5
    ), daily AS (
        SELECT user_id, day, tool, model, billed, calls::bigint, jobs::bigint,
               input_tokens::numeric, output_tokens::numeric, cost_micros::numeric
        FROM usage_daily
    )
    SELECT (SELECT count(*) FROM (SELECT * FROM ledger EXCEPT SELECT * FROM daily) AS missing)
         + (SELECT count(*) FROM (SELECT * FROM daily EXCEPT SELECT * FROM ledger) AS extra)
    """
)


def mismatches() -> int:
    with session_scope() as session:
        return session.scalar(ROLLUP_MATCHES_LEDGER)


def test_the_rollup_equals_the_ledger_after_a_random_workload():
    rng = random.Random(20261122)
    user_ids = [make_user() for _ in range(4)]
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=n) for n in range(6)]

    add_ledger_rows(rng, user_ids, 150, days)
    assert metering.roll_up(batch=64) > 0  # several batches
    assert mismatches() == 0

    # Later rows land on days already rolled up, and on new ones.
    add_ledger_rows(rng, user_ids, 80, [*days, today + dt.timedelta(days=1)])
    assert mismatches() > 0
    added = metering.roll_up(batch=1000)
    assert mismatches() == 0

    assert metering.roll_up() == 0  # idempotent: nothing new, nothing changes
    assert mismatches() == 0 and added > 0
    with session_scope() as session:
        billed_total = session.scalar(
            select(func.sum(UsageDaily.input_tokens)).where(UsageDaily.billed.is_(True))
        )
        ledger_total = session.scalar(
            select(func.sum(UsageLedger.input_tokens)).where(UsageLedger.billed.is_(True))
        )
    assert billed_total == ledger_total


def test_the_rollup_task_folds_new_rows(settings, fake_openai):
    from tasks.usage import rollup

    user_id = make_user()
    job_id = submit(user_id)
    assert pipeline.run_job(job_id, settings=settings).status == "succeeded"
    assert rollup.run() == 1
    with session_scope() as session:
        [daily] = session.scalars(select(UsageDaily)).all()
    job = load(job_id)
    assert (daily.user_id, daily.tool, daily.billed, daily.calls, daily.jobs) == (user_id, "text", True, 1, 1)
    assert (daily.input_tokens, daily.cost_micros) == (job.input_tokens, job.cost_micros)
    assert mismatches() == 0


def test_counters_are_per_month():
    user_id = make_user()
    rows.usage_counter(user_id, period=dt.date(2020, 1, 1), tokens_used=999, tokens_reserved=5)
    assert counter(user_id) == (0, 0)  # last month's use does not count this month
