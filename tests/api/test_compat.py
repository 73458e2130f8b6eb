"""Guards of api/compat.py: each fails when the library changes under what it relies on."""

import inspect

from flask_jwt_extended import JWTManager

from api.compat import RememberingJWTManager
from tests.helpers import API, register


def test_flask_jwt_extended_still_verifies_through_the_method_that_is_overridden():
    parameters = inspect.signature(JWTManager._decode_jwt_from_config).parameters
    assert list(parameters) == ["self", "encoded_token", "csrf_value", "allow_expired"]
    assert (parameters["csrf_value"].default, parameters["allow_expired"].default) == (None, False)
    assert "_decode_jwt_from_config" in RememberingJWTManager.__dict__


def test_a_request_token_is_verified_through_the_override_and_remembered(app, client):
    from api.extensions import jwt

    headers, body = register(client)
    jwt._verified.clear()
    assert client.get(f"{API}/users/me", headers=headers).status_code == 200
    secret = app.config["JWT_SECRET_KEY"]
    # flask-jwt-extended called the override for this request's token: it is remembered.
    assert (secret, body["access_token"]) in jwt._verified
    assert client.get(f"{API}/users/me", headers=headers).status_code == 200


def test_flask_jwt_extended_still_reads_a_token_header_through_the_replaced_global(client):
    import flask_jwt_extended.view_decorators as view_decorators
    from flask_jwt_extended.utils import get_unverified_jwt_headers

    from api import compat

    # The request path looks the name up in its module's globals at call time.
    assert "get_unverified_jwt_headers" in view_decorators._decode_jwt_from_request.__code__.co_names
    assert view_decorators.get_unverified_jwt_headers is compat._remembered_header
    headers, body = register(client)
    compat._unverified_header.cache_clear()
    assert client.get(f"{API}/users/me", headers=headers).status_code == 200
    assert compat._unverified_header.cache_info().currsize == 1  # read through the replacement
    token = body["access_token"]
    assert compat._remembered_header(token) == get_unverified_jwt_headers(token)
