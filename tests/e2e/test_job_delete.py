"""A job a real worker ran, exported by the worker, then deleted by its owner: the
result, the export's stored file and the events are gone; GET /usage still counts it."""

import uuid

import pytest

from db.models import Export
from db.redis_client import get_redis
from db.session import session_scope
from tests.fakes.services import wait_until
from tests.helpers import API, register, submit, wait_for
from workers import job_stream
from workers.storage import ObjectNotFound, get_storage

pytestmark = pytest.mark.e2e


def test_a_run_and_exported_job_is_deleted_with_its_file_and_events(client, celery_worker, settings):
    headers = register(client)[0]
    job_id = submit(client, headers, input={"prompt": "Keep me briefly."}).get_json()["id"]
    assert wait_for(client, headers, job_id)["status"] == "succeeded"
    export = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "md"}, headers=headers).get_json()

    def built():
        return (
            client.get(f"{API}/exports/{export['id']}", headers=headers).get_json()["status"] == "succeeded"
        )

    wait_until(built, 15, message="the worker to build the export")
    with session_scope() as session:
        key = session.get(Export, uuid.UUID(export["id"])).storage_key
    assert get_storage(settings).get(key)
    assert get_redis().exists(job_stream.stream_key(job_id)) == 1
    billed = client.get(f"{API}/usage", headers=headers).get_json()["totals"]
    assert billed["jobs"] == 1 and billed["input_tokens"] > 0

    assert client.delete(f"{API}/jobs/{job_id}", headers=headers).status_code == 204

    assert client.get(f"{API}/jobs/{job_id}", headers=headers).status_code == 404
    assert client.get(f"{API}/exports/{export['id']}", headers=headers).status_code == 404
    with pytest.raises(ObjectNotFound):
        get_storage(settings).get(key)
    assert get_redis().exists(job_stream.stream_key(job_id)) == 0
    assert client.get(f"{API}/usage", headers=headers).get_json()["totals"] == billed
