"""Helpers for calling a provider in tests: its settings, its requests, the waits it chose,
and an interrupt from another thread."""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from settings import Settings
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.services import wait_until
from workers.providers import interrupts
from workers.providers.base import CompletionRequest

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "steps": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "weeks": {"type": "integer", "minimum": 1}},
                "required": ["name", "weeks"],
            },
        },
        "level": {"enum": ["beginner", "expert"]},
        "code": {"type": "string", "maxLength": 4},
    },
    "required": ["title", "steps", "level", "code"],
    "additionalProperties": False,
}


class SleepRecorder:
    """Stands in for time.sleep so tests see the waits the retry policy chose."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def make_settings(server: FakeOpenAI | str, **overrides: Any) -> Settings:
    """Settings for a provider reaching `server`: a fake, or a base URL."""
    settings = Settings(
        ai_provider="openai",
        openai_api_key="test-key",
        openai_base_url=server if isinstance(server, str) else server.base_url,
        openai_timeout=2.0,
        provider_max_attempts=3,
        provider_backoff_base=0.01,
        provider_backoff_max=0.05,
    )
    return dataclasses.replace(settings, **overrides)


def unique(text: str) -> str:
    """A message no other test sends, so request counts and marker counters stay per test."""
    return f"{text} #{uuid.uuid4().hex[:8]}"


def ask(content: str, **fields: Any) -> CompletionRequest:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": content}]
    return CompletionRequest(model="gpt-test", messages=messages, max_output_tokens=200, **fields)


def sent(fake: FakeOpenAI, content: str) -> list[dict[str, Any]]:
    return [body for body in list(fake.requests) if body["messages"][-1]["content"] == content]


def under(interrupt: interrupts.Interrupt, call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)` with `interrupt` current, as inside a job's Lease."""
    context = contextvars.copy_context()
    context.run(interrupts.current.set, interrupt)
    return context.run(call, *args)


def interrupt_when(ready: Callable[[], Any]) -> interrupts.Interrupt:
    """An Interrupt that another thread (as the lease monitor) interrupts once `ready()`."""
    interrupt = interrupts.Interrupt()

    def watch() -> None:
        wait_until(ready, 10, interval=0.01, message="the moment to interrupt")
        interrupt.interrupt()

    threading.Thread(target=watch, daemon=True).start()
    return interrupt
