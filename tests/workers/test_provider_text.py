"""The one rule for a provider's text (workers/provider_text.py): NUL removed, lone
surrogates replaced by U+FFFD, wherever a worker stores or streams it; the job succeeds."""

import json

from db.redis_client import get_redis
from db.repositories import jobs
from db.session import session_scope
from tests import rows
from workers import job_stream, pipeline
from workers.provider_text import storable
from workers.providers.schema_sample import sample_instance
from workers.tools import get_tool


def _load(job_id):
    with session_scope() as session:
        return jobs.get(session, job_id=job_id)


def _marker(reply: str) -> str:
    """A prompt telling the fake to reply with `reply`, NUL and lone surrogates included
    (written as JSON escapes: the prompt itself holds none)."""
    return f"[[reply-json:{json.dumps(reply)}]]"


def test_the_rule_removes_nul_and_replaces_lone_surrogates_at_any_depth():
    assert storable("a\u0000b\ud800c\udfffd") == "ab\ufffdc\ufffdd"
    assert storable({"k\u0000ey": ["x\ud83d", {"y": "ok 😀 é"}], "n": 3, "none": None}) == {
        "key": ["x\ufffd", {"y": "ok 😀 é"}],
        "n": 3,
        "none": None,
    }
    assert storable("plain") == "plain"


def test_a_text_reply_with_nul_and_a_lone_surrogate_is_stored_by_the_rule(settings, fake_openai):
    job_id = rows.queued_job(tool="text", input={"prompt": _marker("one\u0000 two \ud800 three 😀")})
    assert pipeline.run_job(job_id, settings=settings).status == "succeeded"
    assert _load(job_id).output == {"text": "one two \ufffd three 😀"}
    streamed = "".join(
        event.data["text"] for event in job_stream.read(get_redis(), job_id) if event.type == job_stream.DELTA
    )
    assert streamed == "one two \ufffd three 😀"


def test_json_output_with_nul_and_a_lone_surrogate_is_stored_by_the_rule(settings, fake_openai):
    tool = get_tool("roadmap")
    output = sample_instance(tool.output_schema)
    output["title"] = "Plan\u0000 A"
    output["summary"] = "Start \udc00 now"
    output["ex\u0000tra"] = "kept"  # the schema allows more properties
    job_id = rows.queued_job(
        tool="roadmap", input={"goal": _marker(json.dumps(output)), "timeline": "a year"}
    )
    assert pipeline.run_job(job_id, settings=settings).status == "succeeded"
    stored = _load(job_id).output
    assert stored["title"] == "Plan A" and stored["summary"] == "Start \ufffd now"
    assert stored["extra"] == "kept"
