"""Webhook delivery called directly, as the tasks call it, against a local receiver.
Retries are driven by moving next_attempt_at into the past, not by waiting."""

import dataclasses
import datetime as dt
import socket
import uuid

import pytest
from sqlalchemy import func, select, text, update

from db.models import WebhookDelivery
from db.models.job import FAILED, SUCCEEDED
from db.repositories import jobs, outbox, users, webhooks
from db.session import session_scope
from tests import rows
from tests.helpers import API, register, submit
from workers.webhooks import delivery


@pytest.fixture(autouse=True)
def fresh_receiver(receiver):
    receiver.reset()


def finished_job(url: str, status: str = SUCCEEDED) -> tuple[uuid.UUID, uuid.UUID]:
    """A job that just ended `status` with a webhook; returns (job id, delivery id)."""
    output = {"text": "hello"} if status == SUCCEEDED else None
    job_id = rows.finished_job(input={"prompt": "hi"}, status=status, output=output, webhook_url=url)
    with session_scope() as session:
        [row] = webhooks.for_job(session, job_id=job_id)
        return job_id, row.id


def load(delivery_id) -> WebhookDelivery:
    with session_scope() as session:
        return webhooks.get(session, delivery_id=delivery_id)


def secret_for(delivery_id) -> str:
    with session_scope() as session:
        user_id = webhooks.get(session, delivery_id=delivery_id).user_id
        return users.get(session, user_id=user_id).webhook_secret


def make_due(delivery_id, **values):
    with session_scope() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(next_attempt_at=text("now() - interval '1 s'"), **values)
        )


def test_a_finished_job_is_delivered_once_signed_with_the_users_secret(receiver):
    job_id, delivery_id = finished_job(receiver.url())
    assert delivery.deliver(delivery_id) == "delivered"
    assert delivery.deliver(delivery_id) is None  # a duplicate message does nothing

    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["webhook-id"] == str(delivery_id)
    assert request.headers["user-agent"] == "Conveyor-Webhooks/1"
    assert request.headers["content-type"] == "application/json"
    payload = request.verify(secret_for(delivery_id))
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == str(job_id) and payload["data"]["output"] == {"text": "hello"}
    assert dt.datetime.fromisoformat(payload["timestamp"])

    done = load(delivery_id)
    assert done.status == "delivered" and done.attempts == 1 and done.delivered_at is not None
    assert done.next_attempt_at is None and done.last_status_code == 200 and done.last_error is None
    [attempt] = done.attempt_log
    assert attempt.attempt == 1 and attempt.status_code == 200 and attempt.duration_ms >= 0


def test_a_500_is_retried_later_and_delivered_on_the_second_attempt(receiver):
    _, delivery_id = finished_job(receiver.url(), status=FAILED)
    receiver.answer(500)
    assert delivery.deliver(delivery_id) == "pending"
    waiting = load(delivery_id)
    with session_scope() as session:
        now = session.scalar(select(func.now()))
    assert waiting.last_status_code == 500 and waiting.last_error == "HTTP 500"
    assert 7 <= (waiting.next_attempt_at - now).total_seconds() <= 13  # 10 s ± 20 %

    assert delivery.deliver(delivery_id) is None  # not due yet
    assert delivery.sweep() == []
    make_due(delivery_id)
    assert delivery.sweep() == [delivery_id]
    assert delivery.deliver(delivery_id) == "delivered"

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # receivers de-duplicate on it
    assert first.body == second.body
    assert second.verify(secret_for(delivery_id))["type"] == "job.failed"
    log = load(delivery_id).attempt_log
    assert [(a.attempt, a.status_code) for a in log] == [(1, 500), (2, 200)]


def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(receiver):
    _, delivery_id = finished_job(receiver.url())
    receiver.answer(302, location=receiver.url("/elsewhere"))
    assert delivery.deliver(delivery_id) == "pending"
    assert [r.path for r in receiver.requests] == ["/hook"]
    [attempt] = load(delivery_id).attempt_log
    assert attempt.status_code == 302
    assert "redirects are not followed" in attempt.error and "/elsewhere" in attempt.error


def test_a_receiver_slower_than_the_timeout_is_retried(receiver, settings):
    _, delivery_id = finished_job(receiver.url())
    receiver.answer(200, delay=1.0)
    quick = dataclasses.replace(settings, webhook_timeout=0.2)
    assert delivery.deliver(delivery_id, settings=quick) == "pending"
    [attempt] = load(delivery_id).attempt_log
    assert attempt.status_code is None and attempt.error == "timed out after 0.2 s"


def test_a_closed_port_is_retried(receiver):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    _, delivery_id = finished_job(f"http://127.0.0.1:{closed}/hook")
    assert delivery.deliver(delivery_id) == "pending"
    assert load(delivery_id).last_error.startswith("could not connect")


def test_the_delivery_gives_up_after_the_max_age(receiver, settings):
    _, delivery_id = finished_job(receiver.url())
    receiver.answer(500, times=2)
    assert delivery.deliver(delivery_id) == "pending"
    make_due(delivery_id, first_attempt_at=func.now() - dt.timedelta(seconds=settings.webhook_max_age))
    assert delivery.deliver(delivery_id) == "failed"

    given_up = load(delivery_id)
    assert given_up.status == "failed" and given_up.next_attempt_at is None and given_up.attempts == 2
    assert given_up.last_error.startswith("HTTP 500; giving up after 2 attempts")
    make_due(delivery_id)
    assert delivery.sweep() == [] and delivery.deliver(delivery_id) is None


def test_a_delivery_whose_worker_died_is_picked_up_again_by_the_sweep(receiver):
    _, delivery_id = finished_job(receiver.url())
    with session_scope() as session:  # a worker claimed it, then died before recording anything
        assert outbox.claim(session, table=webhooks.TABLE, row_id=delivery_id, hold_seconds=30)
    assert delivery.sweep() == []  # still held
    with session_scope() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(locked_until=text("now() - interval '1 s'"))
        )
    assert delivery.sweep() == [delivery_id]
    assert delivery.deliver(delivery_id) == "delivered"
    log = load(delivery_id).attempt_log
    assert [(a.attempt, a.status_code) for a in log] == [(1, None), (2, 200)]
    assert "worker stopped" in log[0].error


def test_a_worker_that_died_past_the_max_age_leaves_it_failed(receiver, settings):
    _, delivery_id = finished_job(receiver.url())
    with session_scope() as session:
        outbox.claim(session, table=webhooks.TABLE, row_id=delivery_id, hold_seconds=30)
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(
                locked_until=text("now() - interval '1 s'"),
                first_attempt_at=func.now() - dt.timedelta(seconds=settings.webhook_max_age + 1),
            )
        )
    assert delivery.sweep() == []
    assert load(delivery_id).status == "failed" and receiver.requests == []


def test_the_sweep_sends_one_message_per_due_delivery_until_it_goes_stale(receiver):
    _, delivery_id = finished_job(receiver.url())
    assert delivery.due_for_job(uuid.uuid4()) is None
    assert delivery.sweep() == [delivery_id]
    assert delivery.sweep() == []  # its message is still fresh
    assert delivery.due_for_job(delivery_id) is None
    make_due(delivery_id, locked_until=text("now() - interval '1 s'"))  # the message was lost
    assert delivery.sweep() == [delivery_id]


def test_a_url_refused_at_delivery_time_fails_at_once(receiver, settings):
    _, delivery_id = finished_job("http://hooks.example.com/hook")
    private = lambda host, port, type=0, **_: [(socket.AF_INET, type, 6, "", ("10.0.0.5", port))]  # noqa: E731
    assert delivery.deliver(delivery_id, resolve=private) == "failed"
    failed = load(delivery_id)
    assert failed.next_attempt_at is None and failed.attempts == 1
    assert failed.last_error == (
        "Refused: webhook_url resolves to a private address (10.0.0.5); use a public https URL."
    )


def test_a_host_that_does_not_resolve_is_retried(receiver):
    _, delivery_id = finished_job("http://hooks.example.com/hook")

    def unresolvable(host, port, type=0, **_):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    assert delivery.deliver(delivery_id, resolve=unresolvable) == "pending"
    assert "could not be resolved" in load(delivery_id).last_error


def test_it_connects_to_the_checked_address_and_names_the_host(receiver, settings):
    # The host resolves (once) to the receiver's address; the request says which host it is for.
    _, delivery_id = finished_job(f"http://hooks.test:{receiver.port}/in?x=1")
    allowed = dataclasses.replace(settings, webhook_allowed_hosts=("hooks.test",))
    to_receiver = lambda host, port, type=0, **_: [  # noqa: E731
        (socket.AF_INET6, type, 6, "", ("::1", port, 0, 0)),  # refused: the next address is tried
        (socket.AF_INET, type, 6, "", ("127.0.0.1", port)),
    ]
    assert delivery.deliver(delivery_id, settings=allowed, resolve=to_receiver) == "delivered"
    [request] = receiver.requests
    assert request.headers["host"] == f"hooks.test:{receiver.port}" and request.path == "/in?x=1"


def test_the_webhook_data_is_the_job_as_the_api_shows_it(client, receiver):
    headers, _ = register(client)
    job_id = submit(client, headers, webhook_url=receiver.url()).get_json()["id"]
    with session_scope() as session:
        jobs.start(session, job_id=uuid.UUID(job_id), lease_seconds=30, max_attempts=3)
        jobs.finish(
            session,
            job_id=uuid.UUID(job_id),
            outcome=jobs.Outcome(
                FAILED,
                output={"text": "partial"},
                error_code="provider_error",
                error_message="The provider failed.",
                usage=jobs.Usage(input_tokens=10, output_tokens=3, cost_micros=4),
            ),
        )
        [row] = webhooks.for_job(session, job_id=uuid.UUID(job_id))
    assert delivery.deliver(row.id) == "delivered"
    secret = client.get(f"{API}/users/me/webhook-secret", headers=headers).get_json()["secret"]
    payload = receiver.requests[0].verify(secret)
    assert payload["data"] == client.get(f"{API}/jobs/{job_id}", headers=headers).get_json()


def test_https_goes_to_the_checked_address_and_checks_the_certificate_for_the_host(tmp_path, monkeypatch):
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from workers.webhooks import transport
    from workers.webhooks.guard import Target

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    hosts = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            hosts.append(self.headers["host"])
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    port = server.server_address[1]
    try:
        target = Target(scheme="https", host="hooks.test", port=port, path="/in", addresses=("127.0.0.1",))
        untrusted = transport.post(target, body=b"{}", headers={}, timeout=2)
        assert untrusted.status_code is None and "CERTIFICATE_VERIFY_FAILED" in untrusted.error

        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # trust the test's certificate
        assert transport.post(target, body=b"{}", headers={}, timeout=2).status_code == 204
        assert hosts == [f"hooks.test:{port}"]
        other = dataclasses.replace(target, host="other.test")
        mismatch = transport.post(other, body=b"{}", headers={}, timeout=2)
        assert mismatch.status_code is None and "not valid for 'other.test'" in mismatch.error
    finally:
        server.shutdown()
        server.server_close()
