"""The fake OpenAI server's Files and Batches endpoints, through the real openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def client(fake_openai: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key="test-key", base_url=fake_openai.base_url, max_retries=0, timeout=5.0)


def line(custom_id: str, prompt: str) -> dict:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], "max_tokens": 50}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def upload(client: openai.OpenAI, lines: list[dict]) -> str:
    data = "".join(json.dumps(item) + "\n" for item in lines).encode()
    uploaded = client.files.create(file=("jobs.jsonl", data), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data)
    return uploaded.id


def read_lines(client: openai.OpenAI, file_id: str) -> dict[str, dict]:
    text = client.files.content(file_id).text
    return {item["custom_id"]: item for item in map(json.loads, text.splitlines())}


def test_a_batch_completes_with_an_output_and_an_error_file(client, fake_openai):
    fake_openai.batches.failing_ids = {"lost"}
    file_id = upload(client, [line("a", "Hello"), line("b", "[[fail:400]] no"), line("lost", "gone")])

    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating" and batch.input_file_id == file_id
    done = client.batches.retrieve(batch.id)

    assert done.status == "completed"
    assert done.request_counts.total == 3
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 2)
    output = read_lines(client, done.output_file_id)
    assert list(output) == ["a"]
    answer = output["a"]["response"]
    assert answer["status_code"] == 200 and answer["request_id"]
    assert answer["body"]["choices"][0]["message"]["content"] == "Echo: Hello"
    assert answer["body"]["usage"]["prompt_tokens"] > 0
    errors = read_lines(client, done.error_file_id)
    assert errors["b"]["response"]["status_code"] == 400 and errors["b"]["error"] is None
    assert errors["lost"]["response"] is None and errors["lost"]["error"]["code"] == "server_error"
    assert [body["messages"][0]["content"] for body in fake_openai.batches.lines] == [
        "Hello",
        "[[fail:400]] no",
        "gone",
    ]


def test_a_held_batch_stays_in_progress_until_finished_on_demand(client, fake_openai):
    fake_openai.batches.finish_after = None
    file_id = upload(client, [line("a", "Later")])
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    assert client.batches.retrieve(batch.id).status == "in_progress"
    assert client.batches.retrieve(batch.id).output_file_id is None
    fake_openai.batches.finish(batch.id)
    assert client.batches.retrieve(batch.id).status == "completed"


def test_a_batch_is_cancelled(client, fake_openai):
    fake_openai.batches.finish_after = None
    file_id = upload(client, [line("a", "Never mind")])
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    assert client.batches.cancel(batch.id).status == "cancelling"
    cancelled = client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at and cancelled.output_file_id is None
    assert fake_openai.batches.lines == []


def test_an_invalid_input_file_fails_the_batch_with_the_line(client):
    bad = {**line("a", "x"), "url": "/v1/embeddings"}
    file_id = upload(client, [line("ok", "fine"), bad])
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    assert failed.errors.data[0].line == 2 and failed.errors.data[0].code == "invalid_url"


def test_unknown_files_and_batches_are_404s(client):
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-missing")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id="x", endpoint="/v1/embeddings", completion_window="24h")
