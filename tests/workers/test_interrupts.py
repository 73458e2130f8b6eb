"""Interrupting a provider call's reads, on real sockets: from another thread (the
lease monitor under the prefork pool) and from another greenlet (under gevent)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import httpx2
import pytest

from tests.fakes.services import ROOT
from workers.providers import interrupts, pooling
from workers.providers.interrupts import Interrupt, Interrupted


@pytest.fixture
def connection():
    """Both ends of a real TCP connection: (ours, the peer's)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
    with ours, peer:
        yield ours, peer


def test_an_interrupted_interrupt_does_not_read(connection):
    ours, peer = connection
    peer.sendall(b"x")
    interrupt = Interrupt()
    interrupt.interrupt()

    with pytest.raises(Interrupted):
        interrupt.read(ours, ours.recv, 1)

    assert ours.recv(1) == b"x"  # left unread


def test_an_interrupt_wakes_a_read_blocked_in_another_thread(connection):
    ours, peer = connection
    interrupt = Interrupt()
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(interrupt.read(ours, ours.recv, 1))  # recv returns b"" once shut down
        except Interrupted:
            outcome.append(Interrupted)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.2)  # blocked in recv: the peer sends nothing
    interrupt.interrupt()
    reader.join(timeout=5)

    assert outcome == [Interrupted]
    assert peer.recv(1) == b""  # the socket being read was shut down


def test_only_the_current_interrupt_stops_a_call(fake_openai):
    client = httpx2.Client(transport=pooling.PoolingTransport(), timeout=5)
    models = f"{fake_openai.base_url}/models"
    elsewhere = Interrupt()  # another job's, interrupted
    elsewhere.interrupt()

    assert client.get(models).status_code == 200  # no current interrupt: untouched

    token = interrupts.current.set(elsewhere)
    try:
        connections = fake_openai.connections
        with pytest.raises(Interrupted) as caught:
            client.get(models)
        assert caught.value.sent is False  # a call stopped before it went out is not billed
        assert fake_openai.connections == connections
    finally:
        interrupts.current.reset(token)
    assert client.get(models).status_code == 200
    client.close()


GEVENT_CALL = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import sys

    import gevent

    from settings import Settings
    from workers.providers import interrupts
    from workers.providers.base import Canceled, CompletionRequest
    from workers.providers.openai_provider import OpenAIProvider

    settings = Settings(
        ai_provider="openai", openai_api_key="test-key", openai_base_url=sys.argv[1], openai_timeout=30.0
    )
    provider = OpenAIProvider(settings)
    interrupt = interrupts.Interrupt()
    request = CompletionRequest(
        model="gpt-test", messages=[{"role": "user", "content": "[[hang]] under gevent"}], max_output_tokens=50
    )

    def call():
        interrupts.current.set(interrupt)
        try:
            provider.complete(request)
        except Canceled as stop:
            return "canceled " + repr(stop.partial.text)
        return "answered"

    job = gevent.spawn(call)
    while interrupt._reading is None:  # until the call is blocked reading the response
        gevent.sleep(0.01)
    interrupt.interrupt()
    print(job.get(timeout=5))
    """
)


def test_an_interrupt_wakes_a_call_blocked_in_another_greenlet(fake_openai):
    """The gevent pool: the monitor is a greenlet, and so is the job waiting on the provider."""
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_CALL, fake_openai.base_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.stdout.strip() == "canceled ''", result.stderr
    assert len(fake_openai.requests) == 1


def test_an_interrupt_wakes_a_call_blocked_over_tls_in_another_greenlet(fake_openai_tls, local_ca):
    """As production reaches api.openai.com: the call reads gevent's SSL socket, whose
    shutdown drops its SSL object before shutting the socket. It trusts the fake's CA as
    an operator would make it, through SSL_CERT_FILE."""
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_CALL, fake_openai_tls.base_url],
        cwd=ROOT,
        env={**os.environ, "SSL_CERT_FILE": str(local_ca.ca_file)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert fake_openai_tls.base_url.startswith("https://")
    assert result.stdout.strip() == "canceled ''", result.stderr
    assert len(fake_openai_tls.requests) == 1
