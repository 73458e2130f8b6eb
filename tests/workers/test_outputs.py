"""Outputs over OUTPUT_INLINE_MAX_BYTES go to storage; the job gives a presigned output_url."""

import dataclasses
import json
import urllib.request

import pytest

from api import create_app
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from tests.conftest import _free_port
from tests.helpers import API, register
from workers import pipeline


def queued_job(user_id, prompt: str):
    return rows.queued_job(user_id, input={"prompt": prompt})


def load(job_id):
    with session_scope() as session:
        return jobs.get(session, job_id=job_id)


@pytest.fixture
def s3_settings(settings, s3_server):
    return dataclasses.replace(s3_server.settings(settings), output_inline_max_bytes=1024)


@pytest.fixture
def owner(s3_settings):
    """A client of an app storing in S3, and a registered user of it."""
    client = create_app(s3_settings).test_client()
    headers, body = register(client)
    return client, headers, body["user"]["id"]


def test_a_large_output_is_stored_and_served_by_a_presigned_url(s3_settings, s3_server, owner, fake_openai):
    client, headers, user_id = owner
    prompt = ("Write about queues. " * 100).strip()  # the echoed reply is about 2 KB
    job_id = queued_job(user_id, prompt)

    assert pipeline.run_job(job_id, settings=s3_settings).status == "succeeded"

    job = load(job_id)
    assert job.output is None
    assert job.output_key == f"users/{user_id}/jobs/{job_id}/output.json"
    bucket = s3_settings.storage_url.removeprefix("s3://")
    stored = s3_server.client().get_object(Bucket=bucket, Key=job.output_key)["Body"].read()
    assert json.loads(stored) == {"text": "Echo: " + prompt}

    shown = client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()
    assert shown["status"] == "succeeded" and shown["output"] is None
    assert "X-Amz-Expires=900" in shown["output_url"]
    with urllib.request.urlopen(shown["output_url"], timeout=10) as response:
        assert json.loads(response.read()) == {"text": "Echo: " + prompt}

    listed = client.get(f"{API}/jobs", headers=headers).get_json()["items"]
    assert listed[0]["id"] == str(job_id) and listed[0]["output_url"]


def test_a_small_output_stays_in_the_row(s3_settings, owner, fake_openai):
    client, headers, user_id = owner
    job_id = queued_job(user_id, "Short.")
    assert pipeline.run_job(job_id, settings=s3_settings).status == "succeeded"
    shown = client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()
    assert shown["output"] == {"text": "Echo: Short."} and shown["output_url"] is None
    assert load(job_id).output_key is None


def test_a_store_that_is_down_leaves_the_output_in_the_row(settings, owner, fake_openai):
    _, _, user_id = owner
    unreachable = dataclasses.replace(
        settings,
        storage_url="s3://nowhere",
        s3_endpoint_url=f"http://127.0.0.1:{_free_port()}",
        output_inline_max_bytes=10,
    )
    job_id = queued_job(user_id, "A result that was paid for.")
    assert pipeline.run_job(job_id, settings=unreachable).status == "succeeded"
    job = load(job_id)
    assert job.output == {"text": "Echo: A result that was paid for."} and job.output_key is None
