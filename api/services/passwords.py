"""Stored passwords: argon2id hashes with the parameters PASSWORD_HASH_PROFILE names.

A hash carries its own parameters, so a password hashed under one profile still
verifies under another; `needs_rehash` tells the login to store it again with the
current one. `cheapest` makes a hash at argon2's lowest cost, far below a login's: it
is for test suites, and production refuses it (settings.py).
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from settings import get_settings

_PROFILES = {
    "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
    "cheapest": profiles.CHEAPEST,
}


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(_PROFILES[get_settings().password_hash_profile])


@cache
def _dummy_hash() -> str:
    """Verified against when there is no account, so that path costs what a real one does."""
    return _hasher().hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether the password matches the stored hash; with no hash, as long as a check takes."""
    try:
        if stored is None:
            _hasher().verify(_dummy_hash(), password)
            return False
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher().check_needs_rehash(stored)
