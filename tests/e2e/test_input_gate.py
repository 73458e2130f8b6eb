"""The input gate through the real gunicorn gevent web: a chunked body over the size
limit is a 413 in the error shape, as one that gives its Content-Length is."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from settings import get_settings


def _post_chunked(base: str, path: str, body: bytes, chunk: int = 16 * 1024) -> tuple[int, dict]:
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
    try:
        connection.putrequest("POST", f"{url.path}{path}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_body_over_the_limit_is_413_and_one_under_it_is_read_whole(start_stack):
    base = start_stack(processes=("web",))
    limit = get_settings().max_request_bytes
    over = json.dumps({"email": "a@example.com", "password": "x" * limit}).encode()
    status, body = _post_chunked(base, "/auth/login", over)
    assert status == 413, body
    assert (
        body["code"] == 413
        and body["message"] == f"The request body is too large: the limit is {limit} bytes."
    )
    # Under the limit, the whole chunked body reaches the view: a wrong password, not a cut body.
    under = json.dumps({"email": "a@example.com", "password": "x" * 200}).encode()
    status, body = _post_chunked(base, "/auth/login", under, chunk=64)
    assert status == 401, body


def test_a_nul_through_the_real_web_is_422_naming_the_field(start_stack):
    base = start_stack(processes=("web",))
    status, body = _post_chunked(
        base,
        "/auth/register",
        json.dumps({"email": "a@example.com", "password": "long enough pw", "name": "a\u0000b"}).encode(),
    )
    assert status == 422 and "NUL" in body["errors"]["json"]["name"][0], body
