"""Submitting to the batch lane, with no worker and no beat: a job with a deadline or
`lane: batch` is held (`scheduled`), never sent, its quota reserved; a deadline that
does not suit the lane is a 422 naming it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from tests.helpers import API, assert_error, queued_tasks, register, submit


@pytest.fixture
def headers(client):
    return register(client)[0]


def _in(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).isoformat()


def test_a_job_with_a_deadline_is_held_for_the_batch_lane_and_not_sent(client, headers):
    deadline = _in(6)
    response = submit(client, headers, input={"prompt": "By tonight."}, deadline=deadline)

    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert (job["status"], job["lane"], job["run_at"]) == ("scheduled", "batch", None)
    assert dt.datetime.fromisoformat(job["deadline"]) == dt.datetime.fromisoformat(deadline)
    assert job["expires_at"] == job["deadline"]
    assert job["id"] not in [args[0] for args in queued_tasks("conveyor.generation.run", "ai")]
    assert client.get(f"{API}/usage", headers=headers).get_json()["quota"]["reserved"] > 0
    shown = client.get(f"{API}/jobs/{job['id']}", headers=headers)
    assert shown.get_json()["status"] == "scheduled" and shown.headers["Retry-After"]


def test_lane_batch_without_a_deadline_gets_the_providers_day(client, headers):
    job = submit(client, headers, lane="batch").get_json()
    left = dt.datetime.fromisoformat(job["deadline"]) - dt.datetime.now(dt.UTC)
    assert job["lane"] == "batch" and dt.timedelta(hours=23, minutes=59) < left <= dt.timedelta(hours=24)


def test_a_standard_job_says_its_lane(client, headers):
    job = submit(client, headers, lane="standard").get_json()
    assert (job["status"], job["lane"], job["deadline"]) == ("queued", "standard", None)


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ({"deadline": "soon"}, "deadline", "ISO 8601"),
        ({"deadline": "2030-01-31T09:00:00"}, "deadline", "timezone"),
        ({"lane": "flex-ish"}, "lane", "standard"),
        ({"deadline": "HOURS:0.5"}, "deadline", "at least 60 minutes"),
        ({"deadline": "HOURS:200"}, "deadline", "at most 7 days"),
        ({"deadline": "HOURS:3", "lane": "standard"}, "lane", "batch"),
        ({"deadline": "HOURS:3", "delay_seconds": 60}, "deadline", "run_at"),
    ],
)
def test_a_deadline_that_does_not_suit_the_lane_is_a_422_naming_it(client, headers, extra, field, fragment):
    body = {
        name: _in(float(value.split(":")[1])) if str(value).startswith("HOURS:") else value
        for name, value in extra.items()
    }
    response = submit(client, headers, **body)
    assert_error(response, 422, "")
    errors = response.get_json()["errors"]["json"]
    assert fragment in " ".join(errors[field]), errors


def test_the_batch_lane_needs_a_provider_with_a_batch_api(client, headers, settings):
    import dataclasses

    client.application.extensions["conveyor.settings"] = dataclasses.replace(settings, ai_provider="offline")
    response = submit(client, headers, lane="batch")
    assert_error(response, 422, "Batch API")


def test_a_model_without_batch_prices_cannot_use_the_batch_lane(settings, tmp_path, monkeypatch):
    from api import create_app

    monkeypatch.setenv("LOCAL_LLM_KEY", "dummy")
    prices = {"input": 1, "output": 2}
    catalogue = {
        "endpoints": {"local": {"base_url": "http://127.0.0.1:8001/v1", "api_key_env": "LOCAL_LLM_KEY"}},
        "models": {
            "gpt-4o-mini": {"prices": {"standard": prices, "batch": prices}},
            "house-model": {"prices": {"standard": prices}},
            "local-model": {"provider": "local", "prices": {"standard": prices, "batch": prices}},
        },
    }
    path = tmp_path / "models.json"
    path.write_text(json.dumps(catalogue))
    client = create_app(dataclasses.replace(settings, model_catalogue_file=str(path))).test_client()
    headers = register(client)[0]

    refused = submit(client, headers, model="house-model", lane="batch")
    assert_error(refused, 422, "batch lane")
    [why] = refused.get_json()["errors"]["json"]["lane"]
    assert "'house-model' has no batch lane" in why and "gpt-4o-mini" in why
    by_deadline = submit(client, headers, model="house-model", deadline=_in(6))
    assert "'house-model' has no batch lane" in by_deadline.get_json()["errors"]["json"]["deadline"][0]
    elsewhere = submit(client, headers, model="local-model", lane="batch")
    assert "served by 'local', which has no Batch API" in elsewhere.get_json()["errors"]["json"]["lane"][0]
    assert submit(client, headers, model="gpt-4o-mini", lane="batch").status_code == 202


def test_the_flex_tier_is_not_for_the_batch_lane(client, headers):
    response = submit(client, headers, lane="batch", service_tier="flex")
    assert_error(response, 422, "flex")
    assert response.get_json()["errors"]["json"]["service_tier"] == [
        "Not with the batch lane (lane: batch, or a deadline)."
    ]
