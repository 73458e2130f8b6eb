"""The api layer's one reach into a library's private names, and why it stays.

flask-jwt-extended verifies a request's access token through
`JWTManager._decode_jwt_from_config`, which decodes the token twice before verifying
it, PyJWT checking every character of each part in Python; it offers no public hook
to reuse a verification. `RememberingJWTManager` overrides that method to keep the
claims of the tokens it has verified: a job poll is a request a client repeats with
the same token, and verifying it again is most of the web's work for that request
that is not Conveyor's own.

After verifying, flask-jwt-extended reads the token's header through
`flask_jwt_extended.view_decorators.get_unverified_jwt_headers`, which has PyJWT
decode all three parts of the token again. `remember_token_headers` replaces that
module global with one that decodes a token's header once and keeps it: every
authenticated request pays for the decode, job polls most often of all, and the
header is a pure function of the token's text (already verified, with the same
text, when it is read).

tests/api/test_compat.py fails when a name, signature or role relied on here changes.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from typing import Any

import flask_jwt_extended.view_decorators
from flask import current_app
from flask_jwt_extended import JWTManager
from flask_jwt_extended.utils import get_unverified_jwt_headers

# Tokens remembered per process: a poll's working set (the tokens of the clients polling
# now) with room to spare, and a bounded memory whatever the traffic.
VERIFIED_TOKENS_KEPT = 2_000


class RememberingJWTManager(JWTManager):
    """flask-jwt-extended, remembering the access tokens it has verified.

    The same bytes verify the same way every time, so a verified token's claims are
    kept (the most recent VERIFIED_TOKENS_KEPT, keyed by the signing key and the token)
    and reused while the token has not expired; from its expiry on it is decoded
    afresh, which refuses it exactly as before. Revocation is never remembered: the
    blocklist is read on every request (api.auth._is_revoked)."""

    def __init__(self) -> None:
        super().__init__()
        self._verified: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict:
        if csrf_value is not None or allow_expired:
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        key = (current_app.config["JWT_SECRET_KEY"], encoded_token)
        with self._lock:
            claims = self._verified.get(key)
            if claims is not None:
                self._verified.move_to_end(key)
        if claims is not None and time.time() < claims.get("exp", 0):
            return dict(claims)
        claims = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        if "exp" in claims:  # a token that never expires is verified every time
            with self._lock:
                self._verified[key] = dict(claims)
                while len(self._verified) > VERIFIED_TOKENS_KEPT:
                    self._verified.popitem(last=False)
        return claims


def remember_token_headers() -> None:
    """Make flask-jwt-extended read each token's header through `_remembered_header`."""
    flask_jwt_extended.view_decorators.get_unverified_jwt_headers = _remembered_header


def _remembered_header(encoded_token: str) -> dict[str, Any]:
    """A token's header (its `alg`, `typ`), decoded once per token string; failures are
    not kept, and each caller gets its own copy."""
    return dict(_unverified_header(encoded_token))


@functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _unverified_header(encoded_token: str) -> dict[str, Any]:
    return get_unverified_jwt_headers(encoded_token)
