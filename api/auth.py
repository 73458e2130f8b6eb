"""Who is calling: JWT access tokens (with a Redis blocklist for logout)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, current_app
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    current_user,
    decode_token,
    verify_jwt_in_request,
)

from api.errors import error_response
from api.extensions import jwt
from db.models import User
from db.redis_client import get_redis, key
from db.repositories import users
from db.session import db_session
from settings import Settings

BEARER = [{"bearerAuth": []}]


def current_settings() -> Settings:
    return current_app.extensions["conveyor.settings"]


def login_required(view: Callable) -> Callable:
    """The caller must present a valid, unrevoked access token."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        verify_jwt_in_request()
        return view(*args, **kwargs)

    return wrapper


def get_current_user() -> User:
    return current_user


def revoke_token(claims: dict[str, Any]) -> None:
    """Blocklist a token until it would have expired anyway."""
    ttl = int(claims["exp"] - dt.datetime.now(dt.UTC).timestamp())
    if ttl > 0:
        get_redis().set(key("jwt", "revoked", claims["jti"]), "1", ex=ttl)


def revoke_encoded(token: str, *, user_id: uuid.UUID) -> bool:
    """Revoke another of the caller's tokens (the refresh token at logout)."""
    try:
        claims = decode_token(token, allow_expired=True)
    except Exception:
        return False
    if claims.get("sub") != str(user_id):
        return False
    revoke_token(claims)
    return True


def init_auth(app: Flask, settings: Settings) -> None:
    app.config["JWT_SECRET_KEY"] = settings.jwt_secret_key
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = dt.timedelta(seconds=settings.access_token_ttl)
    app.config["JWT_REFRESH_TOKEN_EXPIRES"] = dt.timedelta(seconds=settings.refresh_token_ttl)
    app.config["JWT_TOKEN_LOCATION"] = ["headers"]
    jwt.init_app(app)


@jwt.user_identity_loader
def _identity(user: User | str) -> str:
    return str(user.id) if isinstance(user, User) else str(user)


@jwt.user_lookup_loader
def _load_user(_header: dict, claims: dict) -> User | None:
    try:
        user_id = uuid.UUID(claims["sub"])
    except (KeyError, ValueError):
        return None
    return users.get(db_session(), user_id=user_id)


@jwt.token_in_blocklist_loader
def _is_revoked(_header: dict, claims: dict) -> bool:
    return get_redis().exists(key("jwt", "revoked", claims["jti"])) == 1


def _unauthorized(message: str):
    return error_response(401, message, headers={"WWW-Authenticate": "Bearer"})


@jwt.unauthorized_loader
def _missing(reason: str):
    return _unauthorized("Authentication is required: send 'Authorization: Bearer <access token>'.")


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
    return _unauthorized("The token has been revoked (logged out). Log in again.")


@jwt.user_lookup_error_loader
def _unknown_user(_header: dict, _claims: dict):
    return _unauthorized("The account for this token no longer exists.")


@jwt.needs_fresh_token_loader
def _needs_fresh(_header: dict, _claims: dict):
    return _unauthorized("This action needs a fresh login.")


@jwt.token_verification_failed_loader
def _verification_failed(_header: dict, _claims: dict):
    return _unauthorized("The token was refused.")


def issue_tokens(user: User, *, refresh: bool = True) -> dict[str, Any]:
    """The token response: a new access token, and a refresh token at login."""
    body: dict[str, Any] = {
        "access_token": create_access_token(identity=user),
        "token_type": "Bearer",
        "expires_in": current_settings().access_token_ttl,
    }
    if refresh:
        body["refresh_token"] = create_refresh_token(identity=user)
        body["user"] = user
    return body
