"""What a line of a batch's output or error file means for its job (workers/batch_lane/results.py)."""

from __future__ import annotations

import json

import pytest

from workers.batch_lane import results
from workers.providers.schema_sample import sample_instance
from workers.tools import get_tool

TEXT = get_tool("text")
ROADMAP = get_tool("roadmap")


def answered(content: str, *, finish: str = "stop", refusal: str | None = None) -> dict:
    message = {"role": "assistant", "content": content, "refusal": refusal}
    body = {
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }
    return {
        "custom_id": "x",
        "response": {"status_code": 200, "request_id": "r", "body": body},
        "error": None,
    }


def refused(status: int, error: dict) -> dict:
    response = {"status_code": status, "request_id": "r", "body": {"error": error}}
    return {"custom_id": "x", "response": response, "error": None}


def test_a_text_answer_succeeds_with_its_tokens():
    outcome = results.read(answered("Hello there"), TEXT)
    assert (outcome.status, outcome.output, outcome.code) == ("succeeded", {"text": "Hello there"}, None)
    completion = outcome.completion
    assert (completion.model, completion.input_tokens, completion.output_tokens) == (
        "gpt-4o-mini-2024-07-18",
        12,
        5,
    )


def test_a_json_answer_is_checked_against_the_tools_schema():
    valid = json.dumps(sample_instance(ROADMAP.output_schema))
    assert results.read(answered(valid), ROADMAP).status == "succeeded"
    outcome = results.read(answered('{"unexpected": true}'), ROADMAP)
    assert (outcome.status, outcome.code) == ("failed", "invalid_output")
    assert outcome.completion.output_tokens == 5  # what the provider charged for


@pytest.mark.parametrize(
    "line",
    [answered("partial", finish="content_filter"), answered("", refusal="I can't help with that.")],
)
def test_a_filtered_or_refused_answer_fails_content_filtered(line):
    outcome = results.read(line, TEXT)
    assert (outcome.status, outcome.code) == ("failed", "content_filtered")


def test_a_refused_request_fails_with_the_providers_reason_scrubbed():
    error = {"message": "Invalid   value for key sk-abcdef123456 here", "type": "invalid_request_error"}
    outcome = results.read(refused(400, error), TEXT)
    assert (outcome.status, outcome.code) == ("failed", "invalid_request")
    assert (
        outcome.message
        == "The AI provider rejected the request (HTTP 400): Invalid value for key [redacted] here"
    )
    assert outcome.completion is None
    filtered = results.read(refused(400, {"message": "no", "code": "content_filter"}), TEXT)
    assert filtered.code == "content_filtered"


@pytest.mark.parametrize(
    "line",
    [
        refused(429, {"message": "Rate limit reached"}),
        refused(500, {"message": "The server had an error"}),
        refused(408, {"message": "Timeout"}),
        {"custom_id": "x", "response": None, "error": {"code": "batch_expired", "message": "expired"}},
        {"custom_id": "x", "response": {"status_code": 200, "request_id": "r", "body": {"choices": []}}},
        {"custom_id": "x", "response": {"status_code": "200", "body": {}}},
    ],
)
def test_a_line_without_an_outcome_leaves_the_job_to_the_normal_lane(line):
    assert results.read(line, TEXT) is None
