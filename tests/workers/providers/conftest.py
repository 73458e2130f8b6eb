"""Providers reaching the fake OpenAI server (over HTTP, over TLS, or not at all), each
with a `sleep` that records the waits its retry policy chose."""

from __future__ import annotations

import socket

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.workers.providers.calls import SleepRecorder, make_settings
from workers.providers.openai_provider import OpenAIProvider


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def provider(fake_openai: FakeOpenAI, sleep: SleepRecorder) -> OpenAIProvider:
    return OpenAIProvider(make_settings(fake_openai), sleep=sleep)


@pytest.fixture
def tls_provider(fake_openai_tls: FakeOpenAI, trust_local_ca, sleep: SleepRecorder) -> OpenAIProvider:
    """A provider reaching the fake over HTTPS, trusting its CA through SSL_CERT_FILE."""
    return OpenAIProvider(make_settings(fake_openai_tls), sleep=sleep)


@pytest.fixture(params=["http", "https"])
def reached(request: pytest.FixtureRequest) -> tuple[FakeOpenAI, OpenAIProvider]:
    """The fake and a provider reaching it (with the test's `sleep`), over plain HTTP and over TLS."""
    if request.param == "https":
        return request.getfixturevalue("fake_openai_tls"), request.getfixturevalue("tls_provider")
    return request.getfixturevalue("fake_openai"), request.getfixturevalue("provider")


@pytest.fixture
def unreachable_provider(sleep: SleepRecorder) -> OpenAIProvider:
    """A provider whose every connect hangs, as when a firewall drops the packets: a
    listener with a full accept queue (Linux then drops the connection requests).
    Patient reads (30 s), a short connect timeout (0.3 s), two attempts."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as server:
        host, port = server.getsockname()
        with socket.create_connection((host, port)):  # the one the queue holds
            settings = make_settings(
                f"http://{host}:{port}/v1",
                openai_timeout=30.0,
                openai_connect_timeout=0.3,
                provider_max_attempts=2,
            )
            yield OpenAIProvider(settings, sleep=sleep)
