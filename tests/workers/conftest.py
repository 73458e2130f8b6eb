"""The fake OpenAI server over TLS, as production reaches api.openai.com, signed by the
suite's throwaway CA (`local_ca`, tests/fakes/tls.py), and a client trusting that CA the
way an operator would make it, through SSL_CERT_FILE (which httpx2's default SSL
context reads)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.tls import LocalCA


@pytest.fixture(scope="session")
def _fake_openai_tls_server(local_ca: LocalCA) -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(ssl_context=local_ca.server_context).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_openai_tls(_fake_openai_tls_server: FakeOpenAI) -> FakeOpenAI:
    """The fake OpenAI server over HTTPS (`base_url` is https://localhost:<port>/v1), reset."""
    _fake_openai_tls_server.reset()
    return _fake_openai_tls_server


@pytest.fixture
def trust_local_ca(monkeypatch: pytest.MonkeyPatch, local_ca: LocalCA) -> Path:
    """Clients made from here on trust the local CA (and only it), as an operator would
    point them at a private CA. Returns the CA file."""
    monkeypatch.setenv("SSL_CERT_FILE", str(local_ca.ca_file))
    return local_ca.ca_file
