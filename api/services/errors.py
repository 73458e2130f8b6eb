"""Typed errors the domain raises; api/errors.py maps them to HTTP in one place."""

from __future__ import annotations

OUTAGE_RETRY_AFTER = 5  # seconds a client should wait when a backing service is down


class DomainError(Exception):
    status = 400

    def __init__(self, message: str, *, errors: dict | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.headers = headers


class BadRequest(DomainError):
    status = 400


class NotFound(DomainError):
    status = 404


class Unauthorized(DomainError):
    status = 401


class AccountClosed(Unauthorized):
    """A valid token of an account that no longer exists or was closed."""

    def __init__(self) -> None:
        super().__init__(
            "The account for this token no longer exists.", headers={"WWW-Authenticate": "Bearer"}
        )


class PaymentRequired(DomainError):
    """Over the plan's quota: a bigger plan (or next month) would let it through."""

    status = 402


class Forbidden(DomainError):
    status = 403


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    """The request is well-formed but its content is not acceptable (422)."""

    status = 422


class TooManyRequests(DomainError):
    status = 429


class Unavailable(DomainError):
    status = 503


class Gone(DomainError):
    """It existed, and no longer does (an expired download link, a used or expired
    reset or verification link)."""

    status = 410
