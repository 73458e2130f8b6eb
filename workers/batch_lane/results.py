"""What one line of a batch's output or error file means for its job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.models.job import BATCH, FAILED, SUCCEEDED
from workers import pipeline
from workers.providers.base import CONTENT_FILTERED, INVALID_OUTPUT, INVALID_REQUEST, Completion
from workers.providers.openai_provider import REASON_LENGTH, SECRET_LIKE
from workers.tools.base import Tool

# A line's HTTP status that running the request again on the normal lane may change
# (a timeout, a conflict, a rate limit, the provider's errors); other 4xx are the request's own.
RETRYABLE_STATUSES = (408, 409, 429)


@dataclass(frozen=True)
class Outcome:
    status: str
    output: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    completion: Completion | None = None  # what the provider charged for


def read(line: dict[str, Any], tool: Tool) -> Outcome | None:
    """The job's outcome from its line, or None when the line has none to record (the
    provider could not run it, or answered what cannot be read): the job then runs on
    the normal lane."""
    response = line.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("body"), dict):
        return None
    status, body = response.get("status_code"), response["body"]
    if not isinstance(status, int):
        return None
    if 200 <= status < 300:
        return _answered(body, tool)
    if 400 <= status < 500 and status not in RETRYABLE_STATUSES:
        return _refused(status, body)
    return None


def _answered(body: dict[str, Any], tool: Tool) -> Outcome | None:
    try:
        choice = body["choices"][0]
        message = choice["message"]
        text = message.get("content") or ""
        usage = body.get("usage") or {}
        completion = Completion(
            text=text,
            model=body.get("model") or "",
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=choice.get("finish_reason"),
            lane=BATCH,  # priced at the catalogue's batch prices
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        return None
    if completion.finish_reason == "content_filter":
        message_text = "The AI provider stopped the answer under its content policy"
        return Outcome(FAILED, code=CONTENT_FILTERED, message=message_text, completion=completion)
    if message.get("refusal") and not text:
        message_text = "The AI model declined to answer this request"
        return Outcome(FAILED, code=CONTENT_FILTERED, message=message_text, completion=completion)
    if tool.output == "text":
        return Outcome(SUCCEEDED, output={"text": text}, completion=completion)
    parsed, problem = pipeline.parse_json(tool, text)
    if problem is None:
        return Outcome(SUCCEEDED, output=parsed, completion=completion)
    message_text = f"The model's reply did not match the {tool.name!r} output schema: {problem}."
    return Outcome(FAILED, code=INVALID_OUTPUT, message=message_text, completion=completion)


def _refused(status: int, body: dict[str, Any]) -> Outcome:
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    if error.get("code") in ("content_filter", "content_policy_violation"):
        message = "The AI provider refused the request under its content policy"
        return Outcome(FAILED, code=CONTENT_FILTERED, message=message)
    reason = error.get("message")
    reason = SECRET_LIKE.sub("[redacted]", " ".join(reason.split())) if isinstance(reason, str) else ""
    if len(reason) > REASON_LENGTH:
        reason = reason[: REASON_LENGTH - 1].rstrip() + "…"
    message = f"The AI provider rejected the request (HTTP {status})" + (f": {reason}" if reason else "")
    return Outcome(FAILED, code=INVALID_REQUEST, message=message)
