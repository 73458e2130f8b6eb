"""Who is calling: a JWT access token (with a Redis blocklist for logout and for
revoked refresh families) or, on the job API, an API key in `X-API-Key`.

- `login_required`: an access token or an API key (the key is tried when sent).
- `jwt_login_required`: an access token only. API keys cannot manage API keys or the
  account, read or rotate the webhook secret, or export the account (a leaked key must
  not be able to mint more keys, lock the owner out, forge webhooks or take every
  piece of data at once). A password reset revokes every key of the account.
- `admin_required`: an access token of a user whose role is `admin`.
- `stream_access_required`: as `login_required`, or a job's stream token (`?token=`,
  api/services/stream_tokens.py) for that job's events: what an EventSource can send.
`get_current_user()` answers for both kinds of credential, loading the user row on
first use; `current_caller()` reads only what a submit needs (no ORM row);
`current_user_id()` answers without a query (a job poll needs only the id, and checks
the account is open in its own query)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from functools import partial, wraps
from typing import Any

from flask import Flask, current_app, g, request
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    decode_token,
    get_jwt,
    verify_jwt_in_request,
)
from redis.exceptions import RedisError

from api import compat
from api.errors import error_response
from api.extensions import jwt
from api.openapi import TOKEN_ONLY, TOKEN_OR_KEY, documented
from api.services import api_keys, sessions, stream_tokens
from api.services.errors import AccountClosed, Forbidden, Unauthorized
from db.models import User
from db.redis_client import get_redis, key
from db.repositories import users
from db.session import db_session
from settings import Settings

logger = logging.getLogger(__name__)

# The decorators below document the credentials they accept themselves (api/openapi.py).
STREAM_TOKEN = {"streamToken": []}  # a job's events only: the `token` of its urls.stream
API_KEY_HEADER = "X-API-Key"
BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def current_settings() -> Settings:
    return current_app.extensions["conveyor.settings"]


def login_required(view: Callable) -> Callable:
    """The caller must present a live API key (`X-API-Key`, tried first when sent) or a
    valid, unrevoked access token."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        _authenticate()
        return view(*args, **kwargs)

    return documented(security=TOKEN_OR_KEY, statuses={401})(wrapper)


def stream_access_required(view: Callable) -> Callable:
    """As `login_required`; or, when the query has `token`, that token must be a valid
    stream token for the job in the URL (then headers are not looked at, and
    `current_stream_grant()` answers). Only a job's events route takes it."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        token = request.args.get("token")
        if token is None:
            _authenticate()
        else:
            g.conveyor_stream_grant = stream_tokens.verify(
                token, job_id=kwargs["job_id"], settings=current_settings()
            )
        return view(*args, **kwargs)

    return documented(security=[*TOKEN_OR_KEY, STREAM_TOKEN], statuses={401, 410})(wrapper)


def current_stream_grant() -> stream_tokens.Grant | None:
    """The stream token the request came with (after `stream_access_required`), if any."""
    return g.get("conveyor_stream_grant")


def _authenticate() -> None:
    sent_key = request.headers.get(API_KEY_HEADER)
    if sent_key is not None:
        g.conveyor_user, g.conveyor_api_key_id = api_keys.authenticate(
            db_session(), key=sent_key.strip(), settings=current_settings()
        )
    else:
        verify_jwt_in_request()


def jwt_login_required(view: Callable) -> Callable:
    """The caller must present an access token; an API key is refused with 403."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        _refuse_api_key_alone()
        verify_jwt_in_request()
        return view(*args, **kwargs)

    return documented(security=TOKEN_ONLY, statuses={401, 403})(wrapper)


def admin_required(view: Callable) -> Callable:
    """The caller must present an access token of an admin (API keys never are)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        _refuse_api_key_alone()
        verify_jwt_in_request()
        if get_current_user().role != "admin":
            raise Forbidden("This needs an admin account.")
        return view(*args, **kwargs)

    return documented(security=TOKEN_ONLY, statuses={401, 403})(wrapper)


def _refuse_api_key_alone() -> None:
    if API_KEY_HEADER in request.headers and "Authorization" not in request.headers:
        raise Forbidden(
            "API keys cannot manage API keys or the account, its webhook secret or its data export; "
            "send an access token ('Authorization: Bearer <access token>') from POST /api/v1/auth/login."
        )


def get_current_user() -> User:
    """The caller, whether they sent an API key or an access token; 401 when the
    token's account no longer exists or was closed."""
    user = g.get("conveyor_user")
    if user is None:
        user = users.get_open(db_session(), user_id=current_user_id())
        if user is None:
            raise AccountClosed()
        g.conveyor_user = user
    return user


def current_caller() -> users.Caller:
    """The caller as a submit needs them (id, plan, name, profile), read without an
    ORM row; 401 like `get_current_user` when the account no longer exists or was
    closed. An API key's user, or one loaded already, answers without a query."""
    user = g.get("conveyor_user")
    if user is not None:
        return users.Caller.of(user)
    caller = g.get("conveyor_caller")
    if caller is None:
        caller = users.get_caller(db_session(), user_id=current_user_id())
        if caller is None:
            raise AccountClosed()
        g.conveyor_caller = caller
    return caller


def current_user_id() -> uuid.UUID:
    """The caller's id, without loading their row (after `login_required`); with a
    stream token, the job's owner (whose open streams it counts against)."""
    grant = current_stream_grant()
    if grant is not None:
        return grant.user_id
    user = g.get("conveyor_user")
    if user is not None:
        return user.id
    try:
        return uuid.UUID(get_jwt()["sub"])
    except (KeyError, ValueError):
        raise Unauthorized(
            "The token is not valid (no user in it). Log in again.", headers=BEARER_CHALLENGE
        ) from None


def current_api_key_id() -> uuid.UUID | None:
    """The id of the API key the caller sent, or None when they sent an access token."""
    return g.get("conveyor_api_key_id")


def credential_check() -> Callable[[], str | None]:
    """For a stream that outlives its request: a callable that says why the credential
    the request came with has stopped working (an access token expired or revoked, by
    logout or by closing the account; an API key revoked), or None while it works.
    It never raises: when it cannot tell (Redis or the database away), the stream goes
    on and asks again later."""
    grant = current_stream_grant()
    if grant is not None:  # a stream token: until it expires or the account is closed
        return partial(stream_tokens.lapsed, grant)
    key_id = current_api_key_id()
    if key_id is not None:
        return partial(api_keys.lapsed, key_id=key_id)
    return partial(_token_lapsed, dict(get_jwt()))


def _token_lapsed(claims: dict[str, Any]) -> str | None:
    if claims["exp"] <= dt.datetime.now(dt.UTC).timestamp():
        return "The access token has expired. Get a new one from POST /api/v1/auth/refresh and reconnect."
    try:
        if _is_revoked({}, claims):
            return "The token has been revoked (logged out, or its session was ended). Log in again."
    except RedisError:
        logger.warning("token not checked for revocation: Redis is unavailable", exc_info=True)
    return None


def revoke_token(claims: dict[str, Any]) -> None:
    """Blocklist a token until it would have expired anyway."""
    ttl = int(claims["exp"] - dt.datetime.now(dt.UTC).timestamp())
    if ttl > 0:
        get_redis().set(key("jwt", "revoked", claims["jti"]), "1", ex=ttl)


def init_auth(app: Flask, settings: Settings) -> None:
    app.config["JWT_SECRET_KEY"] = settings.jwt_secret_key
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = dt.timedelta(seconds=settings.access_token_ttl)
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = dt.timedelta(seconds=settings.refresh_token_ttl)
    app.config["JWT_TOKEN_LOCATION"] = ["headers"]
    jwt.init_app(app)
    compat.remember_token_headers()


@jwt.user_identity_loader
def _identity(user: User | str) -> str:
    return str(user.id) if isinstance(user, User) else str(user)


@jwt.token_in_blocklist_loader
def _is_revoked(_header: dict, claims: dict) -> bool:
    keys = [key("jwt", "revoked", claims["jti"])]
    if claims.get(sessions.FAMILY_CLAIM):
        keys.append(sessions.family_revoked_key(claims[sessions.FAMILY_CLAIM]))
    return get_redis().exists(*keys) > 0


def _unauthorized(message: str):
    return error_response(401, message, headers=BEARER_CHALLENGE)


@jwt.unauthorized_loader
def _missing(reason: str):
    return _unauthorized(
        "Authentication is required: send 'Authorization: Bearer <access token>' "
        "(or, on the job API, 'X-API-Key: <key>')."
    )


@jwt.invalid_token_loader
def _invalid(reason: str):
    return _unauthorized(f"The token is not valid ({reason}). Log in again.")


@jwt.expired_token_loader
def _expired(_header: dict, claims: dict):
    kind = "refresh" if claims.get("type") == "refresh" else "access"
    hint = "Log in again." if kind == "refresh" else "Get a new one from POST /api/v1/auth/refresh."
    return _unauthorized(f"The {kind} token has expired. {hint}")


@jwt.revoked_token_loader
def _revoked(_header: dict, _claims: dict):
    return _unauthorized("The token has been revoked (logged out, or its session was ended). Log in again.")


@jwt.needs_fresh_token_loader
def _needs_fresh(_header: dict, _claims: dict):
    return _unauthorized("This action needs a fresh login.")


@jwt.token_verification_failed_loader
def _verification_failed(_header: dict, _claims: dict):
    return _unauthorized("The token was refused.")


def issue_tokens(user: User) -> dict[str, Any]:
    """Login and registration: an access and a refresh token of a new family."""
    family_id, jti = uuid.uuid4(), uuid.uuid4()
    sessions.start(db_session(), user_id=user.id, jti=jti, family_id=family_id, settings=current_settings())
    return {**_token_pair(user, family_id=family_id, refresh_jti=jti), "user": user}


def rotate_tokens(claims: dict[str, Any], user: User) -> dict[str, Any]:
    """Refresh: use up the presented refresh token; a new access and refresh token."""
    new_jti = uuid.uuid4()
    try:
        jti = uuid.UUID(claims["jti"])
    except (KeyError, ValueError):
        raise Unauthorized("The refresh token is not valid. Log in again.") from None
    family_id = sessions.rotate(
        db_session(), user_id=user.id, jti=jti, new_jti=new_jti, settings=current_settings()
    )
    return _token_pair(user, family_id=family_id, refresh_jti=new_jti)


def end_session(claims: dict[str, Any], *, refresh_token: str | None) -> None:
    """Logout: revoke the presented token, and the family (session) of it and of the
    refresh token given, if that is the caller's."""
    revoke_token(claims)
    user = get_current_user()
    families = [claims.get(sessions.FAMILY_CLAIM)]
    if refresh_token:
        other = _own_claims(refresh_token, user_id=user.id)
        if other is not None:
            revoke_token(other)
            families.append(other.get(sessions.FAMILY_CLAIM))
    sessions.end(db_session(), user_id=user.id, family_ids=families, settings=current_settings())


def _own_claims(token: str, *, user_id: uuid.UUID) -> dict[str, Any] | None:
    try:
        claims = decode_token(token, allow_expired=True)
    except Exception:
        return None
    return claims if claims.get("sub") == str(user_id) else None


def _token_pair(user: User, *, family_id: uuid.UUID, refresh_jti: uuid.UUID) -> dict[str, Any]:
    family = {sessions.FAMILY_CLAIM: str(family_id)}
    return {
        "access_token": create_access_token(identity=user, additional_claims=family),
        "refresh_token": create_refresh_token(
            identity=user, additional_claims={**family, "jti": str(refresh_jti)}
        ),
        "token_type": "Bearer",
        "expires_in": current_settings().access_token_ttl,
    }
