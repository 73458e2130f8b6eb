"""The SSE framing a streamed answer may arrive in, read by workers/providers/chunks.py:
every line ending the format allows, events split anywhere across reads, comments,
events of several `data:` lines, and the error event the SDK's own stream raises."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest

from workers.providers.chunks import chunks


class Pieces(httpx2.SyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self):
        yield from self.pieces


def read(*pieces: bytes) -> list:
    request = httpx2.Request("POST", "http://provider.test/v1/chat/completions")
    return list(chunks(httpx2.Response(200, stream=Pieces(list(pieces)), request=request)))


def event(n: int, ending: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps({"n": n}).encode() + ending + ending


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_split_at_every_byte(ending):
    body = event(1, ending) + event(2, ending) + b"data: [DONE]" + ending + ending
    for cut in range(1, len(body)):
        assert read(body[:cut], body[cut:]) == [{"n": 1}, {"n": 2}], (ending, cut)


def test_comments_other_fields_and_data_over_several_lines():
    body = (
        b': keep-alive\n\nid: 7\nevent: message\ndata: {"a":\ndata:1}\n\n\n\ndata:{"b":2}\n\ndata: [DONE]\n\n'
    )
    assert read(body) == [{"a": 1}, {"b": 2}]


def test_reading_stops_at_done_and_an_unfinished_event_is_dropped():
    assert read(event(1) + b"data: [DONE]\n\n" + event(2)) == [{"n": 1}]
    assert read(event(1) + b'data: {"n": 2}\n') == [{"n": 1}]


def test_data_that_is_not_json_raises_value_error():
    with pytest.raises(ValueError):
        read(b"data: {not json\n\n")
    assert read(b'data: {"n": 1} \n\n') == [{"n": 1}]  # trailing whitespace, as json.loads allows


def test_an_error_event_raises_the_sdks_api_error():
    with pytest.raises(openai.APIError) as caught:
        read(event(1), b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')
    assert caught.value.message == "overloaded"
    assert caught.value.body == {"message": "overloaded", "type": "server_error"}


def test_a_lone_cr_inside_one_read_ends_its_line():
    """A read that looks like one `data:` event but holds a CR (a line end of its own)
    is read by the format's rules, not taken as one data line."""
    assert read(b'data: {"n": 1}\rid: 5\n\n', b"data: [DONE]\n\n") == [{"n": 1}]
