"""Conversations: CRUD, a message is a job carrying the earlier turns, replies stored once."""

import dataclasses
import uuid

import pytest

from db.repositories import conversations
from db.session import session_scope
from tests.helpers import API, register
from workers import conversations as turns
from workers import pipeline, plans
from workers.tools import get_tool


@pytest.fixture
def headers(client):
    return register(client)[0]


def start(client, headers, tool="coach", **extra):
    response = client.post(f"{API}/conversations", json={"tool": tool, **extra}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def say(client, headers, conversation_id, content):
    return client.post(
        f"{API}/conversations/{conversation_id}/messages", json={"content": content}, headers=headers
    )


def answer(job_id, settings):
    """Run the job as a worker would (against the fake OpenAI server)."""
    return pipeline.run_job(uuid.UUID(job_id), settings=settings).status


def test_create_get_list_and_delete(client, headers):
    coach = start(client, headers, title="Two offers")
    tutor = start(client, headers, tool="tutor")
    assert coach["tool"] == "coach" and coach["title"] == "Two offers"
    assert tutor["title"] is None

    shown = client.get(f"{API}/conversations/{coach['id']}", headers=headers).get_json()
    assert shown["id"] == coach["id"] and shown["messages"] == []

    page = client.get(f"{API}/conversations?limit=1", headers=headers).get_json()
    assert [item["id"] for item in page["items"]] == [tutor["id"]] and page["next_cursor"]
    rest = client.get(f"{API}/conversations?limit=1&cursor={page['next_cursor']}", headers=headers).get_json()
    assert [item["id"] for item in rest["items"]] == [coach["id"]] and rest["next_cursor"] is None

    assert client.delete(f"{API}/conversations/{coach['id']}", headers=headers).status_code == 204
    assert client.get(f"{API}/conversations/{coach['id']}", headers=headers).status_code == 404
    assert client.delete(f"{API}/conversations/{coach['id']}", headers=headers).status_code == 404


def test_only_conversation_tools_hold_conversations(client, headers):
    response = client.post(f"{API}/conversations", json={"tool": "roadmap"}, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["tool"] == ["Choose one of: coach, tutor."]
    assert client.post(f"{API}/conversations", json={}, headers=headers).status_code == 422
    assert client.get(f"{API}/conversations?cursor=nonsense", headers=headers).status_code == 422


def test_another_users_conversation_is_404(client, headers):
    mine = start(client, headers)
    stranger, _ = register(client)
    assert client.get(f"{API}/conversations/{mine['id']}", headers=stranger).status_code == 404
    assert client.delete(f"{API}/conversations/{mine['id']}", headers=stranger).status_code == 404
    assert say(client, stranger, mine["id"], "hello").status_code == 404
    assert client.get(f"{API}/conversations", headers=stranger).get_json()["items"] == []


def test_a_message_is_a_job_and_the_reply_is_stored_when_it_succeeds(client, headers, settings, fake_openai):
    conversation = start(client, headers)
    response = say(client, headers, conversation["id"], "I have two offers.")
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"{API}/jobs/{job['id']}"
    assert job["tool"] == "coach" and job["input"] == {"message": "I have two offers."}

    shown = client.get(f"{API}/conversations/{conversation['id']}", headers=headers).get_json()
    assert [(m["role"], m["content"], m["job_id"]) for m in shown["messages"]] == [
        ("user", "I have two offers.", job["id"])
    ]
    assert shown["title"] == "I have two offers."  # named by its first message

    assert answer(job["id"], settings) == "succeeded"
    shown = client.get(f"{API}/conversations/{conversation['id']}", headers=headers).get_json()
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [
        ("user", "I have two offers."),
        ("assistant", "Echo: I have two offers."),
    ]
    assert shown["messages"][1]["job_id"] == job["id"]


def test_the_next_message_carries_the_earlier_turns_as_history(client, headers, settings, fake_openai):
    conversation = start(client, headers)
    first = say(client, headers, conversation["id"], "First question").get_json()
    answer(first["id"], settings)
    second = say(client, headers, conversation["id"], "Second question").get_json()
    assert second["input"] == {
        "message": "Second question",
        "history": [
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "Echo: First question"},
        ],
    }
    answer(second["id"], settings)
    sent = fake_openai.requests[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "First question"),
        ("assistant", "Echo: First question"),
        ("user", "Second question"),
    ]


def test_a_second_message_while_the_reply_is_running_is_409(client, headers, settings, fake_openai):
    conversation = start(client, headers)
    first = say(client, headers, conversation["id"], "One").get_json()
    response = say(client, headers, conversation["id"], "Two")
    assert response.status_code == 409
    assert first["id"] in response.get_json()["message"]
    answer(first["id"], settings)
    assert say(client, headers, conversation["id"], "Two").status_code == 202


def test_a_turn_whose_job_failed_is_left_out_of_the_history(client, headers, settings, fake_openai):
    conversation = start(client, headers)
    failed = say(client, headers, conversation["id"], "Break [[fail:400]]").get_json()
    assert answer(failed["id"], settings) == "failed"
    retry = say(client, headers, conversation["id"], "Try again").get_json()
    assert "history" not in retry["input"]
    shown = client.get(f"{API}/conversations/{conversation['id']}", headers=headers).get_json()
    assert [m["content"] for m in shown["messages"]] == ["Break [[fail:400]]", "Try again"]


def test_history_is_trimmed_oldest_first_to_the_context_budget(
    client, headers, settings, fake_openai, monkeypatch
):
    conversation = start(client, headers)
    for number in range(3):
        job = say(client, headers, conversation["id"], f"Question {number} " + "x" * 2000).get_json()
        answer(job["id"], settings)
    # Shrink the model's window so that, after the system prompt, the new message and
    # the reply's budget, about two turns of history fit.
    window = turns.CONTEXT_WINDOWS["gpt-4o-mini"]
    left_now = turns.history_budget(get_tool("coach"), "gpt-4o-mini", {"message": "Last"}, {"name": "Ada"})
    two_turns = 2 * turns.message_tokens("Echo: Question 2 " + "x" * 2000)
    monkeypatch.setitem(turns.CONTEXT_WINDOWS, "gpt-4o-mini", window - left_now + two_turns)
    job = say(client, headers, conversation["id"], "Last").get_json()
    history = job["input"]["history"]
    # The newest exchange is kept whole; older ones are dropped, never the newest.
    assert [turn["content"][:10] for turn in history] == ["Question 2", "Echo: Ques"]


def test_a_reply_is_stored_once_whatever_runs_twice(client, headers):
    conversation = start(client, headers)
    job = say(client, headers, conversation["id"], "Hi").get_json()
    with session_scope() as session:
        assert conversations.add_reply(session, job_id=uuid.UUID(job["id"]), content="Hello") is True
    with session_scope() as session:
        assert conversations.add_reply(session, job_id=uuid.UUID(job["id"]), content="Hello again") is False
        assert conversations.add_reply(session, job_id=uuid.uuid4(), content="no conversation") is False
    shown = client.get(f"{API}/conversations/{conversation['id']}", headers=headers).get_json()
    assert [m["content"] for m in shown["messages"]] == ["Hi", "Hello"]


def test_message_content_is_validated(client, headers):
    conversation = start(client, headers)
    assert say(client, headers, conversation["id"], "").status_code == 422
    assert say(client, headers, conversation["id"], "x" * 8001).status_code == 422
    assert say(client, headers, uuid.uuid4(), "hello").status_code == 404


def test_messages_are_under_the_plans_request_rate(client, headers, monkeypatch):
    monkeypatch.setitem(
        plans.PLANS, "free", dataclasses.replace(plans.PLANS["free"], request_rate="2/minute")
    )
    # A conversation takes one message at a time, so each is in a conversation of its own.
    codes = [say(client, headers, start(client, headers)["id"], "Hi").status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    response = say(client, headers, start(client, headers)["id"], "Hi")
    assert "2/minute" in response.get_json()["message"] and int(response.headers["Retry-After"]) > 0
