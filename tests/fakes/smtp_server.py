"""A real SMTP server for tests (aiosmtpd): keeps every message it accepts, and
answers with a given reply when told to.

    server = SmtpServer().start()
    server.refuse("rcpt", "550 5.1.1 No such user")   # the next RCPT TO gets this
    server.refuse("data", "421 4.3.0 Try again later")  # the next DATA gets this
    [message] = server.wait_for(1)                       # email.message.EmailMessage
    server.wait_for(1, subject="Your text job")          # only those whose subject starts so
    server.stop(); server.start()                        # down, then up again on the same port
"""

from __future__ import annotations

import threading
import time
from collections import deque
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.fakes.services import free_port


class SmtpServer:
    def __init__(self, *, login: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.login = login  # (user, password): AUTH required with these
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []  # (MAIL FROM, RCPT TOs) of each accepted one
        self.arrived: list[float] = []  # when each was accepted (time.time())
        self._refusals: dict[str, deque[str]] = {"rcpt": deque(), "data": deque()}
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        credentials = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"smtp://{credentials}127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        options = {}
        if self.login:
            options = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()
            self.arrived.clear()
            for replies in self._refusals.values():
                replies.clear()

    def refuse(self, command: str, reply: str, times: int = 1) -> None:
        with self._lock:
            self._refusals[command].extend([reply] * times)

    def wait_for(self, count: int, timeout: float = 10.0, subject: str = "") -> list[EmailMessage]:
        """The messages received (those whose subject starts with `subject`), once
        there are at least `count` of them."""
        deadline = time.monotonic() + timeout
        while len(found := self.received(subject)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(found)} emails, expected {count}, in {timeout}s")
            time.sleep(0.05)
        return found

    def received(self, subject: str = "") -> list[EmailMessage]:
        with self._lock:
            return [message for message in self.messages if message["Subject"].startswith(subject)]

    def arrivals(self) -> list[tuple[EmailMessage, float]]:
        """Every message received, with when it was accepted."""
        with self._lock:
            return list(zip(self.messages, self.arrived, strict=True))

    # ------------------------------------------------------------ aiosmtpd handler hooks

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self._next_refusal("rcpt")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = self._next_refusal("data")
        if refusal:
            return refusal
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.append(time.time())
        return "250 Message accepted for delivery"

    def _next_refusal(self, command: str) -> str | None:
        with self._lock:
            replies = self._refusals[command]
            return replies.popleft() if replies else None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        good = (
            isinstance(auth_data, LoginPassword)
            and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            )
            == self.login
        )
        return AuthResult(success=good, handled=False)  # not handled: aiosmtpd answers 535 itself
