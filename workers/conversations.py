"""A conversation turn's input: the new message plus as many earlier turns as fit
the model's context window, oldest dropped first.

The budget is the model's context window less the tool's max output tokens and
what the turn's fixed messages take (system prompt, profile, the new message).
Token counts are estimates (workers.providers.base.estimate_tokens), so each
message is also charged a small overhead for its role and separators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workers.providers.base import estimate_tokens
from workers.tools.base import HISTORY_SCHEMA, Tool

# Context windows in tokens; a dated or suffixed name ("gpt-4o-mini-2024-07-18")
# matches its longest prefix here.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o-mini": 128_000,
    "gpt-4o": 128_000,
    "gpt-4.1-nano": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1": 1_047_576,
}
# An unknown model (self-hosted behind OPENAI_BASE_URL): assume a small window
# rather than overflow one.
DEFAULT_CONTEXT_WINDOW = 8_192
MESSAGE_OVERHEAD_TOKENS = 4
MAX_TURNS: int = HISTORY_SCHEMA["maxItems"]
MAX_TURN_CHARS: int = HISTORY_SCHEMA["items"]["properties"]["content"]["maxLength"]


def context_window(model: str) -> int:
    if model in CONTEXT_WINDOWS:
        return CONTEXT_WINDOWS[model]
    prefixes = [name for name in CONTEXT_WINDOWS if model.startswith(name)]
    return CONTEXT_WINDOWS[max(prefixes, key=len)] if prefixes else DEFAULT_CONTEXT_WINDOW


def message_tokens(content: str) -> int:
    return estimate_tokens(content) + MESSAGE_OVERHEAD_TOKENS


def history_budget(tool: Tool, model: str, turn_input: Mapping[str, Any], profile: Mapping[str, Any]) -> int:
    """Tokens left for earlier turns once the turn's own messages and the reply fit."""
    fixed = tool.build_messages({**turn_input, "history": []}, profile)
    used = sum(message_tokens(message["content"]) for message in fixed)
    return max(0, context_window(model) - tool.max_output_tokens - used)


def trim_history(turns: Iterable[Mapping[str, str]], budget: int) -> list[dict[str, str]]:
    """The newest turns that fit `budget` tokens (and the tool's turn limit), oldest first.

    A kept history starts with a user turn: an answer whose question was dropped
    would only confuse the model.
    """
    ordered = [_turn(turn) for turn in turns]
    kept: list[dict[str, str]] = []
    used = 0
    for turn in reversed(ordered):
        cost = message_tokens(turn["content"])
        if used + cost > budget or len(kept) >= MAX_TURNS:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept


def turn_input(
    tool: Tool,
    model: str,
    *,
    message: str,
    earlier: Iterable[Mapping[str, str]],
    profile: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The job input for one turn: `{message, history}` (plus `extra` fields the tool takes)."""
    data: dict[str, Any] = {**(extra or {}), "message": message}
    history = trim_history(earlier, history_budget(tool, model, data, profile))
    if history:
        data["history"] = history
    return data


def _turn(turn: Mapping[str, str]) -> dict[str, str]:
    content = turn["content"]
    if len(content) > MAX_TURN_CHARS:  # a long reply from a model with a bigger output limit
        content = content[: MAX_TURN_CHARS - 1] + "…"
    return {"role": turn["role"], "content": content}
