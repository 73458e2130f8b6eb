"""A job's `urls`: absolute links on PUBLIC_BASE_URL in every representation, documented
in the OpenAPI spec, and polls that stay cheap while the URLs hold."""

from __future__ import annotations

from tests.api.job_links.links import assert_links, parse, publish_run, stream
from tests.api.test_admin import fail, make_admin
from tests.helpers import API, submit


def test_every_representation_of_a_job_carries_its_absolute_urls(client, headers):
    submitted = submit(client, headers)
    assert submitted.status_code == 202
    job = submitted.get_json()
    assert_links(job)
    job_id = job["id"]

    assert_links(client.get(f"{API}/jobs/{job_id}", headers=headers).get_json())
    long_polled = client.get(f"{API}/jobs/{job_id}?wait=1", headers={**headers, "If-None-Match": '"stale"'})
    assert long_polled.status_code == 200
    assert_links(long_polled.get_json())
    (listed,) = client.get(f"{API}/jobs", headers=headers).get_json()["items"]
    assert_links(listed)
    canceled = client.post(f"{API}/jobs/{job_id}/cancel", headers=headers)
    assert canceled.status_code == 202
    assert_links(canceled.get_json())


def test_a_conversations_reply_job_carries_its_urls(client, headers):
    conversation = client.post(f"{API}/conversations", json={"tool": "coach"}, headers=headers).get_json()
    reply = client.post(
        f"{API}/conversations/{conversation['id']}/messages", json={"content": "Hello"}, headers=headers
    )
    assert reply.status_code == 202
    assert_links(reply.get_json())


def test_admin_representations_link_to_the_admin_routes_and_the_same_stream(client, headers):
    admin = make_admin(client)
    job_id = submit(client, headers).get_json()["id"]
    admin_jobs = f"{API}/admin/jobs/"

    (listed,) = client.get(f"{API}/admin/jobs", headers=admin).get_json()["items"]
    assert_links(listed, manage=admin_jobs)
    assert_links(client.get(f"{admin_jobs}{job_id}", headers=admin).get_json(), manage=admin_jobs)
    canceled = client.post(f"{admin_jobs}{job_id}/cancel", headers=admin)
    assert canceled.status_code == 202
    assert_links(canceled.get_json(), manage=admin_jobs)

    failed_id = submit(client, headers).get_json()["id"]
    fail(failed_id)
    retried = client.post(f"{admin_jobs}{failed_id}/retry", headers=admin)
    assert retried.status_code == 202
    assert_links(retried.get_json(), manage=admin_jobs)
    # The owner's stream URL of the retry, opened by anyone holding it, streams that job.
    publish_run(retried.get_json()["id"])
    body = stream(client, retried.get_json()["urls"]["stream"]).get_data(as_text=True)
    assert parse(body)[-1]["event"] == "done"


def test_a_repeated_poll_of_an_unchanged_job_still_gets_304(client, headers, clock, settings):
    job_id = submit(client, headers).get_json()["id"]
    first = client.get(f"{API}/jobs/{job_id}", headers=headers)
    etag = first.headers["ETag"]
    clock[0] += settings.stream_token_grace // 2 - 1  # within the step: the same token
    for _ in range(3):
        again = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": etag})
        assert again.status_code == 304
    # Once the step turns the URL is renewed, and the client gets it (not a 304 that
    # would leave it holding a URL nearer its end).
    clock[0] += 1
    renewed = client.get(f"{API}/jobs/{job_id}", headers={**headers, "If-None-Match": etag})
    assert renewed.status_code == 200
    assert renewed.get_json()["urls"]["stream"] != first.get_json()["urls"]["stream"]


def test_the_openapi_spec_documents_the_urls_and_the_token(client):
    spec = client.get(f"{API}/openapi.json").get_json()
    job = spec["components"]["schemas"]["Job"]["properties"]["urls"]
    assert set(job["properties"]) == {"get", "cancel", "stream"}
    assert "EventSource" in job["properties"]["stream"]["description"]
    events_route = spec["paths"]["/api/v1/jobs/{job_id}/events"]["get"]
    assert {"streamToken": []} in events_route["security"]
    assert "token" in [parameter["name"] for parameter in events_route["parameters"]]
    assert "410" in events_route["responses"]
    assert spec["components"]["securitySchemes"]["streamToken"] == {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": spec["components"]["securitySchemes"]["streamToken"]["description"],
    }
