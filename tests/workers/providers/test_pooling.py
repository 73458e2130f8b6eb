"""The provider's transport (workers/providers/pooling.py) against a server that answers
in ways the fake OpenAI server does not: a compressed body, a body ended by closing the
connection, and a connection dropped in the middle of a chunked body; and the request's
headers as the server reads them."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Callable, Iterator

import httpx2
import pytest

from workers.providers.pooling import PoolingTransport

Answer = Callable[[socket.socket], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], str]]:
    """Start a one-connection server that reads a request and runs `answer` on the
    socket; returns its base URL."""
    servers: list[socket.socket] = []
    received: list[bytes] = []  # each request's head, as it arrived

    def start(answer: Answer) -> str:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def run() -> None:
            connection, _ = server.accept()
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                received.append(request.partition(b"\r\n\r\n")[0])
                answer(connection)

        threading.Thread(target=run, daemon=True).start()
        return f"http://127.0.0.1:{server.getsockname()[1]}"

    start.received = received  # type: ignore[attr-defined]
    yield start
    for server in servers:
        server.close()


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(transport=PoolingTransport(), timeout=5) as client:
        yield client


def test_a_compressed_body_reaches_the_sdk_decoded(serve, client):
    payload = {"error": {"message": "overloaded", "type": "server_error"}}
    body = gzip.compress(json.dumps(payload).encode())

    def answer(connection: socket.socket) -> None:
        head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
        connection.sendall(head.encode() + body)

    response = client.get(serve(answer) + "/v1/models")

    assert (response.status_code, response.reason_phrase) == (503, "Service Unavailable")
    assert response.json() == payload


def test_a_body_ended_by_the_close_is_read_as_it_arrives(serve, client):
    first_read = threading.Event()

    def answer(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        connection.sendall(b'data: {"n": 1}\n\n')
        first_read.wait(5)  # the second part goes only once the first was read
        connection.sendall(b'data: {"n": 2}\n\n')

    with client.stream("GET", serve(answer) + "/events") as response:
        reads = response.iter_raw()
        assert next(reads) == b'data: {"n": 1}\n\n'
        first_read.set()
        assert b"".join(reads) == b'data: {"n": 2}\n\n'


def test_a_connection_dropped_in_the_middle_of_a_body_is_a_transport_error(serve, client):
    def answer(connection: socket.socket) -> None:
        connection.sendall(
            b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\ndata: {"n": 1}\n\n\r\n'
        )
        connection.sendall(b"40\r\ndata: {")  # a chunk cut short, then the close

    with client.stream("GET", serve(answer) + "/events") as response:
        reads = response.iter_raw()
        assert next(reads) == b'data: {"n": 1}\n\n'
        with pytest.raises(httpx2.TransportError):  # the SDK's APIConnectionError
            next(reads)


def test_a_refused_connection_is_a_connect_error(client):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    with pytest.raises(httpx2.ConnectError):
        client.get(f"http://127.0.0.1:{port}/v1/models")


def test_the_request_headers_reach_the_server_as_they_were_built(serve, client):
    """Byte for byte (a value that is not ASCII is not decoded and encoded again), and a
    name given twice is sent twice."""

    def answer(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    url = serve(answer)
    client.get(url + "/v1/models", headers=[("X-Tag", b"caf\xc3\xa9"), ("X-Tag", "two"), ("X-One", "1")])

    lines = serve.received[0].split(b"\r\n")
    assert lines[0] == b"GET /v1/models HTTP/1.1"
    assert [line for line in lines if line.lower().startswith(b"x-")] == [
        b"X-Tag: caf\xc3\xa9",
        b"X-Tag: two",
        b"X-One: 1",
    ]


def test_a_response_header_that_is_not_ascii_reaches_the_sdk(serve, client):
    """http.client reads header values as latin-1; they are handed on as the bytes that
    came, where encoding them again as ASCII failed the whole call."""

    def answer(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nX-Region: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\n{}")

    response = client.get(serve(answer) + "/v1/models")

    assert response.status_code == 200 and response.json() == {}
    assert response.headers.raw[0] == (b"X-Region", b"caf\xc3\xa9")
