"""Open event streams and long-polls per user and per API key (429 past the cap, the
slot back when the stream ends), and streams that end when their credential stops
working. The flood through the real web is in tests/e2e/test_stream_flood.py."""

import dataclasses
import json

import pytest

from tests.helpers import API, register, submit


@pytest.fixture
def capped(settings):
    from api import create_app

    app = create_app(
        dataclasses.replace(settings, max_open_streams_per_user=3, max_open_streams_per_api_key=2)
    )
    return app.test_client()


def open_stream(client, job_id: str, headers: dict):
    response = client.get(f"{API}/jobs/{job_id}/events", headers=headers, buffered=False)
    if response.status_code == 200:
        assert next(iter(response.response)) == b"retry: 2000\n\n"
    return response


def new_key(client, headers: dict) -> dict:
    key = client.post(f"{API}/api-keys", headers=headers, json={"name": "program"}).get_json()["key"]
    return {"X-API-Key": key}


def test_streams_are_capped_per_api_key_and_per_user(capped):
    headers = register(capped)[0]
    job_id = submit(capped, headers).get_json()["id"]
    first_key, second_key = new_key(capped, headers), new_key(capped, headers)

    by_key = [open_stream(capped, job_id, first_key) for _ in range(3)]
    assert [response.status_code for response in by_key] == [200, 200, 429]
    refused = by_key[-1]
    assert refused.headers["Retry-After"] == "10"
    assert refused.get_json()["code"] == 429
    assert refused.get_json()["message"].startswith("This API key has 2 event streams and long-polls open")

    with_token = open_stream(capped, job_id, headers)  # the user's third
    assert with_token.status_code == 200
    over_user = open_stream(capped, job_id, second_key)
    assert over_user.status_code == 429
    assert over_user.get_json()["message"].startswith("You have 3 event streams and long-polls open")
    assert capped.get(f"{API}/jobs/{job_id}?wait=1", headers=second_key).status_code == 429

    by_key[0].close()  # a stream that ends gives its slot back
    assert open_stream(capped, job_id, second_key).status_code == 200


def test_a_long_poll_gives_its_slot_back_when_it_answers(capped):
    headers = register(capped)[0]
    job_id = submit(capped, headers).get_json()["id"]
    etag = capped.get(f"{API}/jobs/{job_id}", headers=headers).headers["ETag"]
    polls = [
        capped.get(f"{API}/jobs/{job_id}?wait=1", headers={**headers, "If-None-Match": etag})
        for _ in range(5)
    ]
    assert [poll.status_code for poll in polls] == [304] * 5
    streams = [open_stream(capped, job_id, headers) for _ in range(3)]
    assert [stream.status_code for stream in streams] == [200] * 3


def test_another_users_streams_do_not_count(capped):
    mine, theirs = register(capped)[0], register(capped)[0]
    for _ in range(3):
        open_stream(capped, submit(capped, theirs).get_json()["id"], theirs)
    assert open_stream(capped, submit(capped, mine).get_json()["id"], mine).status_code == 200


def rest_of(response) -> list[dict]:
    """The events that follow on an open stream, until it ends (a queued job's place
    in the queue, sent as it changes, left out)."""
    found = []
    for chunk in response.response:
        for block in chunk.decode().strip().split("\n\n"):
            if block.startswith(("event:", "id:")):
                fields = dict(line.split(": ", 1) for line in block.splitlines())
                if fields["event"] != "queue":
                    found.append({"event": fields["event"], "data": json.loads(fields["data"])})
    return found


def test_a_stream_ends_after_logout(client):
    headers, body = register(client)
    job_id = submit(client, headers).get_json()["id"]
    stream = open_stream(client, job_id, headers)
    client.post(f"{API}/auth/logout", headers=headers, json={"refresh_token": body["refresh_token"]})
    ((ended,),) = [rest_of(stream)]
    assert ended["event"] == "error"
    assert ended["data"]["code"] == 401 and ended["data"]["status"] == "Unauthorized"
    assert "revoked" in ended["data"]["message"]


def test_a_stream_ends_when_its_api_key_is_revoked(client):
    headers = register(client)[0]
    created = client.post(f"{API}/api-keys", headers=headers, json={"name": "program"}).get_json()
    job_id = submit(client, {"X-API-Key": created["key"]}).get_json()["id"]
    stream = open_stream(client, job_id, {"X-API-Key": created["key"]})
    assert client.delete(f"{API}/api-keys/{created['id']}", headers=headers).status_code == 204
    ((ended,),) = [rest_of(stream)]
    assert ended["event"] == "error" and "API key" in ended["data"]["message"]


def test_a_stream_ends_when_the_account_is_closed(client):
    headers = register(client)[0]
    job_id = submit(client, headers).get_json()["id"]
    stream = open_stream(client, job_id, headers)
    assert client.delete(f"{API}/users/me", headers=headers).status_code in (202, 204)
    ((ended,),) = [rest_of(stream)]
    assert ended["event"] == "error" and "revoked" in ended["data"]["message"]


def test_a_stream_ends_when_its_access_token_expires(client, app):
    import datetime as dt

    from flask_jwt_extended import create_access_token

    headers, body = register(client)
    job_id = submit(client, headers).get_json()["id"]
    with app.app_context():  # a token of the same user that lives a few seconds, made just before opening
        short = create_access_token(identity=body["user"]["id"], expires_delta=dt.timedelta(seconds=3))
    stream = open_stream(client, job_id, {"Authorization": f"Bearer {short}"})
    assert stream.status_code == 200
    ((ended,),) = [rest_of(stream)]
    assert ended["event"] == "error" and "expired" in ended["data"]["message"]
