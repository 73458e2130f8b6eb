"""The chunks of a streamed chat completion, read from the HTTP body as it arrives.

The SDK's own stream (`openai.Stream`) turns every line into a ServerSentEvent and
every event into a parsed object through its response processing: a few objects and
generator hops per token, for an answer whose every chunk is one `data:` line. Here the
body's bytes are split into events as bytes (the format's delimiters are ASCII, so a
split never cuts a UTF-8 character) and each event's data is parsed by orjson, which
reads UTF-8 bytes directly: no text is decoded but the JSON's strings. A read that is
one whole `data:` event, as a provider sends a token a chunk, takes a short way. What
the SDK's stream does that callers rely on is kept: reading stops at `data: [DONE]`; an
event whose data carries an `error` raises the SDK's `APIError`, as its stream does;
the transport's timeouts and connection errors become the SDK's `APITimeoutError` and
`APIConnectionError`.

Events follow the SSE format: lines end with LF, CRLF or CR, a blank line ends an
event, `data:` lines are joined with LF, comments and other fields are skipped, and an
event the body ends before finishing is dropped (as the SDK drops it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import httpx2
import openai
import orjson

DONE = b"[DONE]"
_DATA = b"data: "
_END = b"\n\n"
_DATA_AT = len(_DATA)
_LF = ord("\n")
_CR = ord("\r")


def chunks(response: httpx2.Response) -> Iterator[Any]:
    """The parsed data of each event of `response`'s body, up to `[DONE]`. Data that is
    not JSON raises ValueError."""
    pending = b""  # the start of an event whose end has not arrived
    held_cr = b""  # a read's last CR, which may be the first half of a CRLF
    # A body sent as it is (as providers send event streams) needs no content decoder,
    # and is read straight from the transport's stream (pooling.py), a read a chunk,
    # rather than through `iter_raw`'s re-chunking and byte count.
    encoded = response.headers.get("content-encoding", "identity") != "identity"
    try:
        for read in response.iter_bytes() if encoded else response.stream:
            if (
                # The short way: the read is one event of one `data:` line ended by LF LF,
                # nothing before it: the first LF the one before last, and the last one,
                # and no CR (a line end of its own).
                not pending
                and not held_cr
                and read.startswith(_DATA)
                and read.find(b"\n") == len(read) - 2
                and read[-1] == _LF
                and _CR not in read  # an int: looked for without taking a buffer of it
            ):
                datas: Iterable[bytes] = (read[_DATA_AT:-2],)
            else:
                read = held_cr + read
                if b"\r" in read:
                    held_cr = b"\r" if read.endswith(b"\r") else b""
                    read = read[:-1] if held_cr else read
                    read = read.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                *events, pending = (pending + read).split(_END)
                datas = _datas(events)
            for data in datas:
                if data[:1] == b"[" and data.startswith(DONE):  # a chunk's data starts with "{"
                    # Closed here, while the body's iterators are still open (as the SDK's
                    # stream closes it), so that the transport reads the body's end and pools
                    # the connection (pooling.py).
                    response.close()
                    return
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    # What orjson refuses and the standard library's decoder takes (a lone
                    # surrogate escaped in a string, which workers clean with
                    # `provider_text.storable`) is left to the latter, which raises
                    # ValueError for what is not JSON.
                    chunk = json.loads(data)
                if type(chunk) is dict and chunk.get("error"):
                    raise _error_event(chunk, response)
                yield chunk
    except httpx2.TimeoutException as error:
        raise openai.APITimeoutError(request=response.request) from error
    except httpx2.RequestError as error:
        raise openai.APIConnectionError(request=response.request) from error


def _datas(events: list[bytes]) -> Iterator[bytes]:
    """The data of each event that has some."""
    for event in events:
        if event.startswith(_DATA) and b"\n" not in event:  # what every chunk looks like
            yield event[_DATA_AT:]
        elif (data := _event_data(event)) is not None:
            yield data


def _event_data(event: bytes) -> bytes | None:
    """The data of an event in any form the SSE format allows; None if it has none."""
    data = []
    for line in event.split(b"\n"):
        if not line or line.startswith(b":"):  # a comment (a keep-alive), or a stray blank line
            continue
        name, _, value = line.partition(b":")
        if name == b"data":
            data.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(data) if data else None


def _error_event(chunk: dict[str, Any], response: httpx2.Response) -> openai.APIError:
    """The SDK's error for an error event in the middle of a stream, as its stream raises it."""
    error = chunk["error"]
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message=message, request=response.request, body=error)
