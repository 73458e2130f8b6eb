"""Where a finished message goes, chosen by MAIL_URL:

    console://                              the log (the default: `make run` shows the links)
    smtp://host:port                        plain SMTP (Mailpit in docker-compose)
    smtp://user:pass@host:port?starttls=1   STARTTLS, then AUTH
    smtps://user:pass@host:465              TLS from the first byte

`send` either returns (the server took the message) or raises TransientError (try
again later: the server or the network is having a moment) or PermanentError
(this message will never go through as it is).
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

SMTP_TIMEOUT = 30.0  # seconds per socket operation
TRUE = ("1", "true", "yes", "on")


class TransientError(Exception):
    """Retry later: no connection, a 4xx reply, a dropped connection."""


class PermanentError(Exception):
    """Never retry: a 5xx reply to the sender, the recipient or the message."""


class Transport(Protocol):
    timeout: float  # seconds per network operation; 0: none

    def send(self, message: EmailMessage) -> None: ...


class ConsoleTransport:
    """Writes each message, readable and whole, to the log instead of sending it."""

    timeout = 0.0

    def send(self, message: EmailMessage) -> None:
        lines = [f"{name}: {value}" for name, value in message.items()]
        for part in message.walk():
            if not part.is_multipart():
                lines += ["", f"--- {part.get_content_type()} ---", part.get_content().rstrip()]
        logger.info("email (console transport, not sent):\n%s", "\n".join(lines))


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    username: str = ""
    password: str = ""
    use_ssl: bool = False  # smtps://
    starttls: bool = False
    timeout: float = SMTP_TIMEOUT

    def send(self, message: EmailMessage) -> None:
        try:
            self._send(message)
        except smtplib.SMTPRecipientsRefused as error:
            replies = list(error.recipients.values())
            detail = "; ".join(f"{code} {_text(reply)}" for code, reply in replies)
            if replies and all(400 <= code < 500 for code, _ in replies):
                raise TransientError(f"recipient deferred: {detail}") from error
            raise PermanentError(f"recipient refused: {detail}") from error
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError, smtplib.SMTPAuthenticationError) as error:
            # The server or our credentials, not this message: worth another try
            # once the server is back or the configuration is fixed.
            raise TransientError(f"{error.smtp_code} {_text(error.smtp_error)}") from error
        except smtplib.SMTPResponseException as error:
            reply = f"{error.smtp_code} {_text(error.smtp_error)}"
            if 500 <= error.smtp_code < 600:
                raise PermanentError(reply) from error
            raise TransientError(reply) from error
        except smtplib.SMTPServerDisconnected as error:
            raise TransientError(f"the server closed the connection: {error}") from error
        except smtplib.SMTPNotSupportedError as error:
            raise PermanentError(f"the server cannot take this message: {error}") from error
        except OSError as error:  # refused, timed out, DNS, TLS (smtplib's own errors are OSErrors too)
            reason = str(error) or type(error).__name__
            raise TransientError(f"could not reach {self.host}:{self.port}: {reason}") from error

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)
        finally:
            # The message is accepted by now (or failed above): a QUIT that goes
            # wrong must not turn it into a retry, which would send it twice.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()


def from_url(url: str) -> Transport:
    """The transport MAIL_URL names; ValueError says what is wrong with it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "console":
        return ConsoleTransport()
    if scheme not in ("smtp", "smtps"):
        raise ValueError(f"MAIL_URL must start with console://, smtp:// or smtps://, got {url!r}")
    if not parts.hostname:
        raise ValueError("MAIL_URL must name the SMTP host, e.g. smtp://localhost:1025")
    query = parse_qs(parts.query)
    return SmtpTransport(
        host=parts.hostname,
        port=parts.port or (465 if scheme == "smtps" else 25),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        use_ssl=scheme == "smtps",
        starttls=query.get("starttls", [""])[0].lower() in TRUE,
        timeout=float(query.get("timeout", [SMTP_TIMEOUT])[0]),
    )


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
