"""The one error shape, `{code, status, message, errors?}`, and the one place
where domain exceptions become HTTP responses."""

from __future__ import annotations

import logging

from flask import Flask
from flask_smorest import Api
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from api.openapi import OperationResponses
from api.schemas.errors import ErrorSchema
from api.services.errors import OUTAGE_RETRY_AFTER, DomainError
from db.session import db_session

logger = logging.getLogger(__name__)

DEFAULT_MESSAGES = {
    400: "The request could not be read.",
    401: "Authentication is required: send 'Authorization: Bearer <access token>'.",
    403: "You are not allowed to do this.",
    404: "Not found.",
    405: "This method is not allowed on this URL.",
    409: "The request conflicts with the current state of the resource.",
    413: "The request body is too large.",
    415: "Send the body as JSON with 'Content-Type: application/json'.",
    422: "The request is invalid; 'errors' says what to fix in each field.",
    429: "Too many requests; wait before trying again.",
    500: "Something went wrong on our side; it has been logged.",
    503: "The service is temporarily unavailable; try again shortly.",
}


class ConveyorApi(Api):
    """flask-smorest's Api, with a `message` on every error and no internals on a 500.

    Its spec lists every status each operation may answer (api/openapi.py) instead of
    flask-smorest's catch-all `default` error response, so that a status nobody
    documented shows up as a spec violation."""

    DEFAULT_ERROR_RESPONSE_NAME = None
    ERROR_SCHEMA = ErrorSchema

    def init_app(self, app: Flask, *, spec_kwargs: dict | None = None) -> None:
        spec_kwargs = {**(spec_kwargs or {}), "extra_plugins": [OperationResponses(app)]}
        super().init_app(app, spec_kwargs=spec_kwargs)

    def handle_http_exception(self, error: HTTPException):
        payload, status, headers = super().handle_http_exception(error)
        if status == 304:
            return "", 304, headers
        errors = payload.get("errors")
        if status == 400 and errors == {"json": ["Invalid JSON body."]}:
            payload["message"] = "The request body is not valid JSON."
        if "message" not in payload:
            payload["message"] = DEFAULT_MESSAGES.get(status) or error.description or error.name
        if status >= 500:
            original = getattr(error, "original_exception", None)
            if original is not None:
                logger.error("unhandled error", exc_info=original)
            payload["message"] = DEFAULT_MESSAGES.get(status, DEFAULT_MESSAGES[500])
        return payload, status, headers


def error_response(status: int, message: str, errors: dict | None = None, headers: dict | None = None):
    payload = {"code": status, "status": _status_name(status), "message": message}
    if errors:
        payload["errors"] = errors
    return payload, status, headers or {}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError):
        return error_response(error.status, error.message, error.errors, error.headers)

    # An outage of a backing service is a 503 the client can retry, not a 500.
    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    @app.errorhandler(KombuOperationalError)
    def handle_redis_down(error: Exception):
        logger.warning("redis unavailable: %s", error)
        return _unavailable("Redis (the job queue) is unavailable; nothing was changed. Retry shortly.")

    @app.errorhandler(OperationalError)
    def handle_database_down(error: OperationalError):
        logger.warning("database unavailable: %s", type(error.orig).__name__ if error.orig else error)
        db_session.remove()
        return _unavailable("The database is unavailable; nothing was changed. Retry shortly.")


def _unavailable(message: str):
    return error_response(503, message, headers={"Retry-After": str(OUTAGE_RETRY_AFTER)})


def _status_name(status: int) -> str:
    return HTTP_STATUS_CODES.get(status, "Error")
