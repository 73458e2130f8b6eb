"""The `offline` provider: no key, no network, so Conveyor runs out of the box.

Every result it makes says so: text replies start with a label, and every string
in a JSON reply carries "(offline)", while still matching the tool's schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from workers.providers.base import Canceled, Completion, CompletionRequest, OnDelta, estimate_tokens
from workers.providers.schema_sample import sample_instance

LABEL = "[offline provider — no AI model was called]"
MODEL = "offline"
SUMMARY_CHARS = 200
WORDS_PER_DELTA = 4


class OfflineProvider:
    name = "offline"

    def complete(self, request: CompletionRequest, on_delta: OnDelta | None = None) -> Completion:
        if request.json_schema is not None:
            text = json.dumps(offline_instance(request.json_schema))
        else:
            text = f"{LABEL} You asked: {_summary(request.messages)}"
        input_tokens = sum(estimate_tokens(str(m.get("content") or "")) for m in request.messages)
        sent: list[str] = []
        for piece in _pieces(text):
            sent.append(piece)
            if on_delta is not None:
                try:
                    on_delta(piece)
                except Canceled:
                    partial = "".join(sent)
                    raise Canceled(_completion(partial, input_tokens, None)) from None
        return _completion(text, input_tokens, "stop")


def _completion(text: str, input_tokens: int, finish_reason: str | None) -> Completion:
    return Completion(
        text=text,
        model=MODEL,
        input_tokens=input_tokens,
        output_tokens=estimate_tokens(text),
        finish_reason=finish_reason,
    )


def offline_instance(schema: dict[str, Any]) -> Any:
    """`sample_instance(schema)`, with every free-text string marked "(offline)"."""
    return _mark(sample_instance(schema), schema, "sample")


def _mark(value: Any, schema: dict[str, Any], label: str) -> Any:
    if "const" in schema or "enum" in schema:
        return value  # fixed values: changing them would break the schema
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return _mark(value, schema[combinator][0], label)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {key: _mark(item, properties.get(key, {}), key) for key, item in value.items()}
    if isinstance(value, list):
        items = schema.get("items", {"type": "string"})
        return [_mark(item, items, label) for item in value]
    if isinstance(value, str):
        return _offline_text(label, schema)
    return value


def _offline_text(label: str, schema: dict[str, Any]) -> str:
    text = f"{label.replace('_', ' ')} (offline)"
    max_length = schema.get("maxLength")
    if max_length is not None and len(text) > max_length:
        text = "(offline)" if max_length >= len("(offline)") else "offline"
    text = text.ljust(schema.get("minLength", 0), ".")
    return text[:max_length] if max_length is not None else text


def _summary(messages: list[dict[str, str]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    content = " ".join(str((last or {}).get("content") or "").split())
    if not content:
        return "(no user message)"
    if len(content) > SUMMARY_CHARS:
        content = content[: SUMMARY_CHARS - 1].rstrip() + "…"
    return f'"{content}"'


def _pieces(text: str) -> list[str]:
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + WORDS_PER_DELTA]) for i in range(0, len(words), WORDS_PER_DELTA)]
