"""A flex job through the pipeline, as the task runs it: waiting for flex room it still
notices a cancel, and it records its lane and what it would have cost on standard."""

import dataclasses
import json

from sqlalchemy import select

from db.models.usage import UsageLedger
from db.session import session_scope
from tests import rows
from tests.fakes.services import wait_until
from tests.workers.test_pipeline import cancel, load, run_in_thread
from workers import pipeline

FLEX_MINI = {
    "models": {
        "gpt-4o-mini": {
            "prices": {"standard": {"input": 1, "output": 2}, "flex": {"input": 0.5, "output": 1}}
        }
    }
}


def flex_settings(settings, tmp_path, **overrides):
    path = tmp_path / "models.json"
    path.write_text(json.dumps(FLEX_MINI))
    return dataclasses.replace(settings, model_catalogue_file=str(path), **overrides)


def test_a_flex_job_is_priced_at_flex_and_its_ledger_keeps_the_standard_cost(settings, fake_openai, tmp_path):
    job_id = rows.queued_job(input={"prompt": "flex ledger"}, service_tier="flex")
    assert pipeline.run_job(job_id, settings=flex_settings(settings, tmp_path)).status == "succeeded"
    job = load(job_id)
    assert job.lane == "flex" and job.answered_by == "gpt-4o-mini"
    assert fake_openai.requests[0]["service_tier"] == "flex"
    with session_scope() as session:
        [call] = session.scalars(select(UsageLedger).where(UsageLedger.job_id == job_id)).all()
    assert call.lane == "flex" and call.cost_micros == job.cost_micros
    assert call.standard_cost_micros == -(
        -(job.input_tokens * 1_000_000 + job.output_tokens * 2_000_000) // 1_000_000
    )
    assert call.standard_cost_micros > call.cost_micros


def test_a_cancel_stops_a_flex_job_waiting_for_room(settings, fake_openai, tmp_path):
    patient = flex_settings(settings, tmp_path, flex_max_wait=60.0)
    job_id = rows.queued_job(input={"prompt": "[[flex-busy]] no room"}, service_tier="flex")
    thread, ended = run_in_thread(job_id, patient)
    wait_until(lambda: fake_openai.requests, 10, message="the first flex call")

    cancel(job_id)
    thread.join(timeout=10)

    assert not thread.is_alive(), "the cancel did not stop the wait"
    assert ended["finished"].status == "canceled"
    assert load(job_id).status == "canceled"
    assert {body.get("service_tier") for body in fake_openai.requests} == {"flex"}  # never standard
