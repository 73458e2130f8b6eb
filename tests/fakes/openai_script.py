"""How the fake OpenAI server (tests/fakes/openai_server.py) answers a request.

Markers in the newest user message that has any (usually the prompt; a JSON repair
turn inherits them) choose the behaviour, so tests that share one server cannot
disturb each other:

    [[fail:429]]  [[fail:quota]]  [[fail:500]]  [[fail:503]]  [[fail:400]]  [[fail:401]]
    [[fail:content_filter]]  [[hang]]  [[slow:0.2]]  [[malformed]]  [[wrong-shape]]  [[invalid-json]]
    [[reply:exact text]]  [[finish:length]]  [[finish:content_filter]]
    [[reply-json:"text as a JSON string literal, escapes such as \\u0000 decoded"]]
    [[cut]]  (stream the first words of the reply, then drop the connection)
    [[linger:2]]  (send `data: [DONE]`, then hold the body open 2 s before its last chunk)
    [[close-after]]  (answer in full, then close the kept-alive connection unannounced,
                      as a server does with an idle one)
    [[fail-model:gpt-4o-mini:500]]  (fail as [[fail:500]] only requests for that model:
                                     the model is down, its fallbacks are not)
    [[flex-busy]]  (a request with service_tier "flex" gets OpenAI's 429 "Resource
                    Unavailable"; a standard one is answered)
    [[stream-error:500]]  [[stream-error:content_filter]]  (stream the first words, then an
                      error event: `data: {"error": …}` with that error of ERRORS)

A trailing count, as in `[[fail:500:2]]` or `[[hang:1]]`, limits the marker to the
first N requests carrying that exact message; later ones get the normal reply.

A message with no marker gets the normal reply, or, when the server is given a `Mix`,
a behaviour drawn at random as a busy provider's: a latency, and now and then a 429,
a 500 or a hang (the soak, soak/).
"""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from workers.providers.schema_sample import sample_instance

WORDS_PER_CHUNK = 3
MARKER = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
# Kinds whose arguments are fixed, so that one more integer argument is a count.
ARITY = {
    "fail": 1,
    "hang": 0,
    "cut": 0,
    "malformed": 0,
    "wrong-shape": 0,
    "invalid-json": 0,
    "slow": 1,
    "finish": 1,
    "linger": 1,
    "close-after": 0,
    "fail-model": 2,
    "flex-busy": 0,
    "stream-error": 1,
}

ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "429": (429, {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}),
    "quota": (
        429,
        {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        },
    ),
    "400": (400, {"message": "Invalid request (fake server)", "type": "invalid_request_error", "code": None}),
    "content_filter": (
        400,
        {
            "message": "The response was filtered: the prompt triggered the content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
        },
    ),
    "500": (
        500,
        {"message": "The server had an error while processing your request.", "type": "server_error"},
    ),
    "503": (503, {"message": "The engine is currently overloaded.", "type": "server_error"}),
    # What OpenAI answers a flex request it has no capacity for (not charged).
    "resource_unavailable": (
        429,
        {
            "message": "Resource Unavailable: flex processing has no capacity for this request now.",
            "type": "rate_limit_error",
            "code": "resource_unavailable",
        },
    ),
}


@dataclass
class Behaviour:
    fail: str | None = None
    hang: bool = False
    cut: bool = False
    malformed: bool = False
    wrong_shape: bool = False  # JSON, but not a chat.completion.chunk
    invalid_json: bool = False
    slow: float = 0.0
    reply: str | None = None
    finish: str = "stop"
    linger: float = 0.0  # seconds between `[DONE]` and the body's last chunk
    close_after: bool = False
    stream_error: str | None = None  # a key of ERRORS, sent as an event after the first piece
    fail_models: dict[str, str] = field(default_factory=dict)  # model -> the failure to answer with
    flex_busy: bool = False
    latency: float = 0.0  # seconds the whole answer takes, spread over its chunks

    def failure_for(self, body: dict[str, Any]) -> str | None:
        """The failure this request gets, if any: for every request, for its model, or
        for its flex tier."""
        if self.fail is not None:
            return self.fail
        if body.get("model") in self.fail_models:
            return self.fail_models[body["model"]]
        if self.flex_busy and body.get("service_tier") == "flex":
            return "resource_unavailable"
        return None


@dataclass
class Mix:
    """How often a marker-less request fails or hangs, and how long the others take.
    Seeded, so a run can be repeated."""

    rate_limited: float = 0.05  # 429 with Retry-After
    server_error: float = 0.02  # 500
    hang: float = 0.01
    latency: tuple[float, float] = (0.2, 3.0)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self) -> Behaviour:
        with self._lock:
            roll = self._random.random()
            latency = self._random.uniform(*self.latency)
        if roll < self.rate_limited:
            return Behaviour(fail="429")
        roll -= self.rate_limited
        if roll < self.server_error:
            return Behaviour(fail="500")
        if roll - self.server_error < self.hang:
            return Behaviour(hang=True)
        return Behaviour(latency=latency)


class Script:
    """Reads the markers of a message into a Behaviour, counting the requests that
    carried each limited marker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], int] = {}

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()

    def behaviour(self, content: str) -> Behaviour:
        behaviour = Behaviour()
        for match in MARKER.finditer(content):
            marker = match.group(1)
            kind, _, rest = marker.partition(":")
            if kind == "reply":
                behaviour.reply = rest
                continue
            if kind == "reply-json":  # the reply as a JSON string literal: escapes allowed
                behaviour.reply = json.loads(rest)
                continue
            if kind not in ARITY:
                continue
            args = rest.split(":") if rest else []
            limit = args[ARITY[kind]] if len(args) > ARITY[kind] else ""
            if limit.isdigit() and not self._still_active(marker, content, int(limit)):
                continue
            if kind == "fail":
                behaviour.fail = args[0] if args else "500"
            elif kind == "hang":
                behaviour.hang = True
            elif kind == "cut":
                behaviour.cut = True
            elif kind == "malformed":
                behaviour.malformed = True
            elif kind == "wrong-shape":
                behaviour.wrong_shape = True
            elif kind == "invalid-json":
                behaviour.invalid_json = True
            elif kind == "slow":
                behaviour.slow = seconds(args[0] if args else "")
            elif kind == "finish" and args:
                behaviour.finish = args[0]
            elif kind == "linger":
                behaviour.linger = seconds(args[0] if args else "")
            elif kind == "close-after":
                behaviour.close_after = True
            elif kind == "fail-model" and args:
                behaviour.fail_models[args[0]] = args[1] if len(args) > 1 else "500"
            elif kind == "flex-busy":
                behaviour.flex_busy = True
            elif kind == "stream-error":
                behaviour.stream_error = args[0] if args else "500"
        return behaviour

    def _still_active(self, marker: str, content: str, limit: int) -> bool:
        with self._lock:
            seen = self._counters.get((marker, content), 0) + 1
            self._counters[(marker, content)] = seen
        return seen <= limit


def last_user_content(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def marker_content(messages: list[dict[str, Any]]) -> str:
    """The newest user message that carries a marker, so that a follow-up turn
    (a JSON repair request, say) behaves as the prompt that started it asked."""
    for message in reversed(messages):
        text = text_of(message.get("content"))
        if message.get("role") == "user" and "[[" in text:
            return text
    return last_user_content(messages)


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def reply_text(body: dict[str, Any], content: str, behaviour: Behaviour) -> str:
    if behaviour.reply is not None:
        return behaviour.reply
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        if behaviour.invalid_json:
            return json.dumps({"unexpected": True})
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(sample_instance(schema))
    return "Echo: " + content


def seconds(raw: str) -> float:
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 1.0


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def token_usage(messages: list[dict[str, Any]], text: str) -> dict[str, int]:
    prompt = estimate_tokens("".join(text_of(message.get("content")) for message in messages))
    completion = estimate_tokens(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def pieces(text: str) -> list[str]:
    """Split text into chunks of a few words that join back to exactly `text`."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]
