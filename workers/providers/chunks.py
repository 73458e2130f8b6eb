"""The chunks of a streamed chat completion, read from the HTTP body as it arrives.

The SDK's own stream (`openai.Stream`) turns every line into a ServerSentEvent and
every event into a parsed object through its response processing: a few objects and
generator hops per token, for an answer whose every chunk is one `data:` line. Here a
read's bytes are decoded once, split into events, and each event's data parsed with the
standard library's JSON decoder. What the SDK's stream does that callers rely on is
kept: reading stops at `data: [DONE]`; an event whose data carries an `error` raises
the SDK's `APIError`, as its stream does; the transport's timeouts and connection
errors become the SDK's `APITimeoutError` and `APIConnectionError`.

Events follow the SSE format: lines end with LF, CRLF or CR, a blank line ends an
event, `data:` lines are joined with LF, comments and other fields are skipped, and an
event the body ends before finishing is dropped (as the SDK drops it).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai

DONE = "[DONE]"
_DATA = "data: "
_decode_json = json.JSONDecoder().raw_decode


def chunks(response: httpx2.Response) -> Iterator[Any]:
    """The parsed data of each event of `response`'s body, up to `[DONE]`. Data that is
    not JSON raises ValueError."""
    try:
        yield from _chunks(response)
    except httpx2.TimeoutException as error:
        raise openai.APITimeoutError(request=response.request) from error
    except httpx2.RequestError as error:
        raise openai.APIConnectionError(request=response.request) from error


def _chunks(response: httpx2.Response) -> Iterator[Any]:
    decode = codecs.getincrementaldecoder("utf-8")().decode
    pending = ""  # the start of an event whose end has not arrived
    held_cr = ""  # a read's last CR, which may be the first half of a CRLF
    # A body sent as it is (as providers send event streams) needs no content decoder.
    encoded = response.headers.get("content-encoding", "identity") != "identity"
    for read in response.iter_bytes() if encoded else response.iter_raw():
        text = held_cr + decode(read)
        if "\r" in text:
            held_cr = "\r" if text.endswith("\r") else ""
            text = text[:-1] if held_cr else text
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        *events, pending = (pending + text).split("\n\n")
        for event in events:
            if event.startswith(_DATA) and "\n" not in event:  # what every chunk looks like
                data = event[len(_DATA) :]
            else:
                data = _event_data(event)
                if data is None:
                    continue
            if data.startswith(DONE):
                # Closed here, while the body's iterators are still open (as the SDK's
                # stream closes it): closing them first would tell httpcore2 the body
                # was abandoned, and it would drop the connection rather than let the
                # transport read the body's end and pool it (pooling.py).
                response.close()
                return
            chunk = _parse(data)
            if type(chunk) is dict and chunk.get("error"):
                raise _error_event(chunk, response)
            yield chunk


def _event_data(event: str) -> str | None:
    """The data of an event in any form the SSE format allows; None if it has none."""
    data = []
    for line in event.split("\n"):
        if not line or line.startswith(":"):  # a comment (a keep-alive), or a stray blank line
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    return "\n".join(data) if data else None


def _parse(data: str) -> Any:
    """`json.loads(data)`, without its checks for what a chunk never is (bytes, leading
    whitespace), which are left to json.loads when the short way fails."""
    try:
        value, end = _decode_json(data)
    except ValueError:
        return json.loads(data)
    if end != len(data):
        return json.loads(data)  # trailing whitespace is allowed; anything else raises
    return value


def _error_event(chunk: dict[str, Any], response: httpx2.Response) -> openai.APIError:
    """The SDK's error for an error event in the middle of a stream, as its stream raises it."""
    error = chunk["error"]
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return openai.APIError(message=message, request=response.request, body=error)
