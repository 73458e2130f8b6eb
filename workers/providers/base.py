"""The one small interface every AI provider implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Error codes a client sees on a failed job. Stable: clients branch on them.
RATE_LIMITED = "rate_limited"
PROVIDER_ERROR = "provider_error"
INVALID_REQUEST = "invalid_request"
TIMEOUT = "timeout"
CONTENT_FILTERED = "content_filtered"
INVALID_OUTPUT = "invalid_output"


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    messages: list[dict[str, str]]
    max_output_tokens: int
    temperature: float = 0.7
    json_schema: dict[str, Any] | None = None  # set: the reply must be JSON of this schema
    schema_name: str = "output"
    service_tier: str | None = None  # "flex": OpenAI's cheaper, slower tier (workers/lanes.py)


@dataclass
class Completion:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    lane: str = "standard"  # how the call is priced: standard, flex (workers/catalogue.py)


@dataclass
class ProviderError(Exception):
    """A provider call that failed. `transient` errors may be retried."""

    code: str
    message: str
    transient: bool = False
    retry_after: float | None = None  # seconds the provider asked us to wait
    partial: Completion | None = field(default=None)
    # A flex call the provider had no room for (429 "resource unavailable"): not charged,
    # and the job may wait for room or run on the standard tier instead (workers/lanes.py).
    flex_unavailable: bool = False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Canceled(Exception):
    """The stream was stopped because the job was canceled; carries what it had."""

    def __init__(self, partial: Completion) -> None:
        super().__init__("canceled")
        self.partial = partial


# Called with each text delta as it streams; raises Canceled to stop the call.
OnDelta = Callable[[str], None]


class Provider(Protocol):
    name: str

    def complete(self, request: CompletionRequest, on_delta: OnDelta | None = None) -> Completion:
        """Run one chat completion, streaming deltas to `on_delta`.

        Raises ProviderError (with a code above) for every failure it can name.
        """
        ...


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for when a provider reports none."""
    return max(1, len(text) // 4) if text else 0
