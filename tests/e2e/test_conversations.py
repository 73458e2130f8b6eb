"""A three-turn conversation through a real Celery worker and the fake OpenAI server."""

import pytest

from tests.helpers import API, register, wait_for

pytestmark = pytest.mark.e2e


def test_the_third_turn_carries_the_first_two_exchanges(client, celery_worker, fake_openai):
    headers, _ = register(client)
    conversation = client.post(f"{API}/conversations", json={"tool": "tutor"}, headers=headers).get_json()

    for question in ("What is a queue?", "And a stack?", "Which is FIFO?"):
        response = client.post(
            f"{API}/conversations/{conversation['id']}/messages", json={"content": question}, headers=headers
        )
        assert response.status_code == 202, response.get_json()
        job = wait_for(client, headers, response.get_json()["id"])
        assert job["status"] == "succeeded", job

    third = fake_openai.requests[-1]["messages"]
    assert third[0]["role"] == "system"
    assert [(m["role"], m["content"]) for m in third[1:5]] == [
        ("user", "What is a queue?"),
        ("assistant", "Echo: What is a queue?\n\nSubject: \nMy level:"),
        ("user", "And a stack?"),
        ("assistant", "Echo: And a stack?\n\nSubject: \nMy level:"),
    ]
    assert third[5]["role"] == "user" and third[5]["content"].startswith("Which is FIFO?")

    shown = client.get(f"{API}/conversations/{conversation['id']}", headers=headers).get_json()
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"] * 3
    assert shown["messages"][-1]["content"].startswith("Echo: Which is FIFO?")
