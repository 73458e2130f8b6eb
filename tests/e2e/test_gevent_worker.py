"""An AI worker run as one gevent process (`-P gevent`, as docs/operations.md sizes
one for calls that mostly wait): many jobs in flight at once in the one process, each
run once and billed once."""

import pytest
from sqlalchemy import func, select

from db.models import UsageLedger
from db.session import session_scope
from tests.e2e.test_fairness import overlap, set_plan
from tests.helpers import register, submit, wait_for

pytestmark = pytest.mark.e2e

USERS, JOBS_EACH = 4, 10  # business: 10 running at once each


def test_a_gevent_worker_runs_many_jobs_at_once_each_once_and_billed_once(client, processes, fake_openai):
    start_worker, _ = processes
    gevent_worker = start_worker("gevent", queues="ai_priority,ai", concurrency=100, pool="gevent")
    submitted = []
    for n in range(USERS):
        headers, body = register(client)
        set_plan(body, "business")
        for m in range(JOBS_EACH):
            response = submit(client, headers, input={"prompt": f"gevent {n}-{m} [[slow:0.25]] a b c"})
            assert response.status_code == 202, response.get_json()
            submitted.append((headers, response.get_json()["id"]))

    done = [wait_for(client, headers, job_id, timeout=60) for headers, job_id in submitted]

    assert {job["status"] for job in done} == {"succeeded"}, [job["error"] for job in done if job["error"]]
    assert {job["attempt"] for job in done} == {1}
    assert overlap(done) >= USERS * JOBS_EACH // 2  # many in flight in the one process
    assert len(fake_openai.requests) == USERS * JOBS_EACH  # one provider call each
    with session_scope() as session:
        billed = session.execute(
            select(UsageLedger.job_id, func.count()).where(UsageLedger.billed).group_by(UsageLedger.job_id)
        ).all()
    assert sorted(str(job_id) for job_id, _ in billed) == sorted(job_id for _, job_id in submitted)
    assert {count for _, count in billed} == {1}
    assert "Traceback" not in gevent_worker.log()
