"""The OpenAI provider's connections to the fake OpenAI server: pooled and reused, closed
when they cannot be, over TLS, and ended by an interrupt or a connect timeout."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.workers.providers.calls import ask, interrupt_when, make_settings, sent, under, unique
from workers.providers import interrupts
from workers.providers.base import PROVIDER_ERROR, TIMEOUT, Canceled, Completion, ProviderError
from workers.providers.openai_provider import OpenAIProvider


def test_streamed_answers_share_one_pooled_connection(fake_openai, provider):
    before = fake_openai.connections

    for n in range(3):
        assert provider.complete(ask(unique(f"answer {n}"))).text.startswith("Echo: answer")

    assert fake_openai.connections - before == 1


def test_calls_after_a_burst_and_a_refusal_reuse_the_connections_left_open(fake_openai, provider):
    with ThreadPoolExecutor(6) as threads:  # six calls at once need six connections
        list(threads.map(lambda n: provider.complete(ask(unique(f"[[slow:0.05]] burst {n}"))), range(6)))
    with pytest.raises(ProviderError):
        provider.complete(ask(unique("[[fail:400]]")))
    before = fake_openai.connections

    for n in range(5):
        provider.complete(ask(unique(f"one at a time {n}")))

    assert fake_openai.connections == before


def test_a_body_held_open_after_done_does_not_hold_the_answer(fake_openai, provider):
    content = unique("[[linger:3]] the server keeps the body open after its last event")
    before = fake_openai.connections
    started = time.monotonic()

    completion = provider.complete(ask(content))

    assert completion.text == "Echo: " + content
    assert time.monotonic() - started < 2  # the drain gave up; the server lingers 3 s
    provider.complete(ask(unique("next")))
    assert fake_openai.connections - before == 2  # that connection was not reused


def test_a_pooled_connection_the_server_closed_is_not_used_again(fake_openai, provider, sleep):
    provider.complete(ask(unique("[[close-after]] the server closes this connection when done")))
    time.sleep(0.2)  # the close reaches the pooled socket
    before = fake_openai.connections
    content = unique("next")

    assert provider.complete(ask(content)).text == "Echo: " + content

    assert fake_openai.connections - before == 1  # a new connection, found without a failed try
    assert sleep.waits == [] and len(sent(fake_openai, content)) == 1


def test_a_cancel_hangs_up_rather_than_reading_the_rest(fake_openai, provider):
    before = fake_openai.connections

    def on_delta(text: str) -> None:
        raise Canceled(Completion(text="", model=""))

    with pytest.raises(Canceled):
        provider.complete(ask(unique("a reply long enough for several chunks of text")), on_delta)
    provider.complete(ask(unique("next")))

    assert fake_openai.connections - before == 2


def test_an_interrupted_call_sends_nothing(fake_openai, provider):
    content = unique("never asked")
    interrupt = interrupts.Interrupt()
    interrupt.interrupt()
    connections = fake_openai.connections

    with pytest.raises(Canceled) as caught:
        under(interrupt, provider.complete, ask(content))

    assert sent(fake_openai, content) == []
    assert fake_openai.connections == connections  # not even a connection was opened
    partial = caught.value.partial  # nothing went out: nothing to charge
    assert (partial.text, partial.input_tokens, partial.output_tokens) == ("", 0, 0)


# Over TLS, as production reaches api.openai.com. A call is read through an ssl.SSLSocket
# there, whose shutdown (the interrupt) drops its SSL object before shutting the socket.


def test_streams_an_answer_over_tls(fake_openai_tls, tls_provider, sleep):
    """The calls the TLS tests below interrupt would otherwise be answered."""
    content = unique("a reply over TLS long enough for several pieces")
    deltas: list[str] = []

    completion = tls_provider.complete(ask(content), deltas.append)

    assert completion.text == "Echo: " + content
    assert len(deltas) > 1 and "".join(deltas) == completion.text
    assert fake_openai_tls.base_url.startswith("https://localhost:")
    assert len(sent(fake_openai_tls, content)) == 1 and sleep.waits == []


def test_a_certificate_from_a_ca_nobody_trusts_is_refused(fake_openai_tls, monkeypatch):
    """Without SSL_CERT_FILE the fake's certificate is checked, and refused: the TLS tests
    really speak TLS, and trust the local CA the way an operator would make them."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    provider = OpenAIProvider(make_settings(fake_openai_tls, provider_max_attempts=1))
    content = unique("who vouches for this server?")

    with pytest.raises(ProviderError) as caught:
        provider.complete(ask(content))

    assert (caught.value.code, caught.value.transient) == (PROVIDER_ERROR, True)
    assert sent(fake_openai_tls, content) == []


def test_an_interrupt_stops_a_call_still_waiting_for_its_response(reached, sleep):
    fake, provider = reached
    content = unique("[[hang]] the provider takes its time")
    interrupt = interrupt_when(lambda: sent(fake, content))
    started = time.monotonic()

    with pytest.raises(Canceled) as caught:  # not a timeout, which would be retried
        under(interrupt, provider.complete, ask(content))

    # Woken, not left to its 2 s read timeout (which, interrupted, would be Canceled too).
    assert time.monotonic() - started < 1
    assert caught.value.partial.text == "" and caught.value.partial.output_tokens == 0
    assert caught.value.partial.input_tokens > 0  # the provider had the prompt: charged as before
    assert len(sent(fake, content)) == 1 and sleep.waits == []


def test_an_interrupt_between_pieces_keeps_the_text_so_far(reached, sleep):
    fake, provider = reached
    content = unique("[[slow:1]] one two three four five six seven eight nine")
    deltas: list[str] = []
    arrived: list[float] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        arrived.append(time.monotonic())

    interrupt = interrupt_when(lambda: deltas)

    with pytest.raises(Canceled) as caught:
        under(interrupt, provider.complete, ask(content), on_delta)

    # Woken, not left to read the next piece a second later (which, interrupted, would be Canceled too).
    assert time.monotonic() - arrived[0] < 0.5
    assert len(deltas) == 1
    assert caught.value.partial.text == deltas[0]
    assert ("Echo: " + content).startswith(deltas[0])
    assert len(sent(fake, content)) == 1 and sleep.waits == []


def test_a_provider_that_takes_no_connection_is_given_up_after_the_connect_timeout(
    unreachable_provider, sleep
):
    started = time.monotonic()

    with pytest.raises(ProviderError) as caught:
        unreachable_provider.complete(ask(unique("anyone there?")))

    assert (caught.value.code, caught.value.transient) == (TIMEOUT, True)
    assert len(sleep.waits) == 1  # tried twice, each given up at the connect timeout
    assert time.monotonic() - started < 3  # not the 30 s a read may wait


def test_a_cancel_while_connecting_ends_the_call_at_the_connect_timeout(unreachable_provider, sleep):
    started = time.monotonic()
    interrupt = interrupt_when(lambda: time.monotonic() - started > 0.1)  # the connect is under way

    with pytest.raises(Canceled) as caught:  # not retried, not a timeout
        under(interrupt, unreachable_provider.complete, ask(unique("never connected")))

    assert time.monotonic() - started < 2
    partial = caught.value.partial  # nothing went out: nothing to charge
    assert (partial.text, partial.input_tokens, partial.output_tokens) == ("", 0, 0)
