"""One POST to a checked target, connecting only to the addresses the guard checked.

urllib3 (rather than requests) because it lets the connection go to a given IP
while the Host header, TLS SNI and certificate check use the URL's host name;
redirects are never followed and nothing is retried here (delivery.py retries).
urllib3 is imported with the first delivery: the AI workers load this module, never post.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from workers.webhooks.guard import Target

MAX_ERROR = 200


@dataclass(frozen=True)
class Response:
    status_code: int | None  # None: no HTTP answer (connection failed, timed out)
    error: str | None
    duration_ms: int
    location: str | None = None


def post(target: Target, *, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    from urllib3 import exceptions

    started = time.monotonic()
    error = "no address to connect to"
    for address in target.addresses:  # the next one only if this one refuses the connection
        try:
            status, location = _post_to(address, target, body=body, headers=headers, timeout=timeout)
        except exceptions.NewConnectionError as failure:  # "…: [Errno 111] Connection refused"
            error = "could not connect: " + str(failure).rsplit(": ", 1)[-1]
            continue
        except exceptions.TimeoutError:
            return Response(None, f"timed out after {timeout:g} s", _since(started))
        except exceptions.HTTPError as failure:
            return Response(None, _describe(failure), _since(started))
        return Response(status, None, _since(started), location)
    return Response(None, error, _since(started))


def _post_to(
    address: str, target: Target, *, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, str | None]:
    import urllib3

    options = {"server_hostname": target.host} if target.scheme == "https" else {}
    pool_class = urllib3.HTTPSConnectionPool if target.scheme == "https" else urllib3.HTTPConnectionPool
    with pool_class(
        address,
        port=target.port,
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=False,
        maxsize=1,
        **options,
    ) as pool:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "host": target.host_header},
            redirect=False,
            retries=False,
            assert_same_host=False,
            preload_content=False,
        )
        location = response.headers.get("location")
        response.release_conn()  # the body is not read; the pool closes the connection
        return response.status, location


def _describe(failure: Exception) -> str:
    text = f"{type(failure).__name__}: {failure}"
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
