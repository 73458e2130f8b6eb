"""One gate for what a client sends, run before any view (so before authentication).

Postgres cannot store a NUL character, and a lone surrogate (half of a UTF-16 pair,
which JSON can spell as `\\ud800`) is not Unicode at all: either one anywhere in a JSON
body (object keys included), the query string, a path value or a stored header is
refused, naming the field, never silently stripped. So are JSON bodies nested deeper
than MAX_JSON_DEPTH, and numbers that are not finite (`NaN`, `Infinity`, `1e999999`)
or are integers outside the signed 64-bit range. The answer is 422 where the route
declares that input (a schema in the OpenAPI spec), 400 where it declares none.

A body over the size limit (MAX_CONTENT_LENGTH, from MAX_REQUEST_BYTES) is a 413,
whether it says its length or arrives chunked.

The JSON body is parsed here, once: the views' argument parser (JsonOnceParser, which
flask-smorest blueprints use through `Blueprint`) reads the parsed body from here
instead of parsing the bytes again.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator
from typing import Any

import flask_smorest
from flask import Flask, current_app, g, request
from flask_smorest.spec.plugins import FlaskPlugin
from webargs.core import is_json
from webargs.flaskparser import FlaskParser

from api.errors import error_response

# Deeper than any tool's input or batch needs, and far below where a recursive reader
# (the JSON decoder, marshmallow, jsonschema) runs out of stack.
MAX_JSON_DEPTH = 32
# Integers a client may send: the signed 64-bit range. Every integer the API reads fits
# in it (a Postgres bigint), JavaScript clients cannot even represent most of those
# beyond it, and a huge one costs time to convert (Python refuses one of over 4,300
# digits with an error of its own).
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
MAX_INT_CHARS = len(str(MIN_INT))
# Errors named in one answer; a body full of bad strings gets the first ones.
MAX_ERRORS = 20

# Headers whose value the API stores.
STORED_HEADERS = ("Idempotency-Key",)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In valid JSON a NUL or a surrogate can only arrive escaped: a raw NUL is a control
# character JSON forbids in strings, and a raw surrogate is not valid UTF-8.
_ESCAPED_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_BODY_KEPT = "json_body"  # on flask.g: the parsed JSON body, for JsonOnceParser

NUL_MESSAGE = "a NUL character (\\u0000), which cannot be stored; remove it."
SURROGATE_MESSAGE = (
    "a lone surrogate (\\ud800-\\udfff), which is not valid Unicode; send text as UTF-8, "
    "or a character outside the BMP as an escaped surrogate pair."
)
DEPTH_MESSAGE = f"Nested deeper than {MAX_JSON_DEPTH} levels of objects and arrays."
NOT_FINITE_MESSAGE = "Must be a finite number (NaN, Infinity and numbers beyond a double's range are not)."
INT_RANGE_MESSAGE = "Integers must lie between -2^63 and 2^63-1."


class _UnfitNumber(Exception):
    """A number the strict decoder refuses; the body is then read again to say where."""


class _Unfit:
    """Stands in for a refused number when the body is read again to name its field."""

    def __init__(self, message: str) -> None:
        self.message = message


def _strict_int(text: str) -> int:
    if len(text) > MAX_INT_CHARS:
        raise _UnfitNumber
    number = int(text)
    if not MIN_INT <= number <= MAX_INT:
        raise _UnfitNumber
    return number


def _strict_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _UnfitNumber
    return number


def _no_constant(_text: str) -> float:
    raise _UnfitNumber


def _marked_int(text: str) -> int | _Unfit:
    try:
        return _strict_int(text)
    except _UnfitNumber:
        return _Unfit(INT_RANGE_MESSAGE)


def _marked_float(text: str) -> float | _Unfit:
    number = float(text)
    return number if math.isfinite(number) else _Unfit(NOT_FINITE_MESSAGE)


_STRICT = json.JSONDecoder(parse_int=_strict_int, parse_float=_strict_float, parse_constant=_no_constant)
_MARKING = json.JSONDecoder(
    parse_int=_marked_int, parse_float=_marked_float, parse_constant=lambda _text: _Unfit(NOT_FINITE_MESSAGE)
)


class JsonOnceParser(FlaskParser):
    """webargs' Flask parser, reading the JSON body the gate has already parsed."""

    def load_json(self, req, schema):
        if _BODY_KEPT in g:
            return g.get(_BODY_KEPT)
        return super().load_json(req, schema)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, its arguments read through JsonOnceParser."""

    ARGUMENTS_PARSER = JsonOnceParser()


def init_gate(app: Flask) -> None:
    """Run the gate before every view and before authentication (register it first)."""
    app.before_request(_gate)


def _gate():
    if request.routing_exception is not None:
        return None  # nothing will read the input: the 404 or 405 stands
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and _over_limit(limit):
        return error_response(413, f"The request body is too large: the limit is {limit} bytes.")
    found = {}
    if request.view_args:
        found.update(_text_errors("path", request.view_args.items()))
    if b"%00" in request.query_string:  # NUL arrives as %00; undecodable bytes become U+FFFD
        found.update(_text_errors("query", request.args.items(multi=True)))
    found.update(_text_errors("headers", ((name, request.headers.get(name)) for name in STORED_HEADERS)))
    if request.content_length != 0 and is_json(request.mimetype):
        found.update(_json_errors(request.get_data(cache=True)))
    if not found:
        return None
    declared = _declared_locations(request.url_rule.rule, request.method)
    status = 422 if set(found) <= declared else 400
    return error_response(
        status, "The request holds text or numbers that cannot be accepted; 'errors' says where.", found
    )


def _over_limit(limit: int) -> bool:
    """Whether the body is over `limit` bytes. A chunked body says no length: it is read
    (one byte past the limit at most; views read it from the cache) to find out."""
    if request.content_length is not None:
        return request.content_length > limit
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return False
    # werkzeug stops a chunked body at max_content_length without a word, which would
    # leave the view a truncated body; one byte more tells the two apart.
    request.max_content_length = limit + 1
    return len(request.get_data(cache=True)) > limit


def _text_errors(location: str, pairs) -> dict[str, dict[str, list[str]]]:
    errors = {}
    for name, value in pairs:
        for text in (name, value):
            message = _text_problem(text) if isinstance(text, str) else None
            if message:
                errors[_escaped(name)] = [message]
                break
    return {location: errors} if errors else {}


def _text_problem(text: str, lead: str = "Contains") -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return f"{lead} " + (NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE)


def _json_errors(body: bytes) -> dict[str, dict[str, Any]]:
    """Parse the body once, strictly; keep it for the views when it passes. Bodies that
    are not JSON are left to the views, which answer 400 as before."""
    marked = False
    try:
        text = body.decode()
        try:
            value = _STRICT.decode(text)
        except _UnfitNumber:
            value, marked = _MARKING.decode(text), True
    except RecursionError:
        return {"json": {"_schema": [DEPTH_MESSAGE]}}
    except ValueError:  # not UTF-8, or not JSON (UnicodeDecodeError is a ValueError)
        return {}
    # Walking the parsed body costs more than parsing it: only when it can find something.
    worth_walking = (
        marked
        or _ESCAPED_UNSTORABLE.search(body) is not None
        or body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH
    )
    problems = list(itertools.islice(_problems(value), MAX_ERRORS)) if worth_walking else []
    if not problems:
        g.setdefault(_BODY_KEPT, value)
        return {}
    errors: dict[str, Any] = {}
    for path, message in problems:
        node = errors
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1] if path else "_schema"] = [message]
    return {"json": errors}


def _problems(value: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path, message) for each value or key that cannot be accepted, depth first."""
    stack: list[tuple[tuple[str, ...], Any, int]] = [((), value, 1)]
    while stack:
        path, node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                yield path, DEPTH_MESSAGE
                continue
            children = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in reversed(list(children)):
                if isinstance(key, str) and (message := _text_problem(key, "This key contains")):
                    yield (*path, _escaped(key)), message
                else:
                    stack.append(((*path, str(key)), child, depth + 1))
        elif isinstance(node, str):
            if message := _text_problem(node):
                yield path, message
        elif isinstance(node, _Unfit):
            yield path, node.message


def _escaped(name: str) -> str:
    """A field name as JSON spells it, so a NUL or a surrogate in it shows as an escape."""
    return json.dumps(name)[1:-1] if _UNSTORABLE.search(name) else name


def _declared_locations(rule: str, method: str) -> set[str]:
    """Where the route's OpenAPI operation takes input: json, query, headers, path."""
    from api.extensions import api

    kept = current_app.extensions.setdefault("conveyor.input_gate", {})
    if "paths" not in kept:
        kept["paths"] = api.spec.to_dict().get("paths", {})
    path = kept["paths"].get(FlaskPlugin.flaskpath2openapi(rule), {})
    operation = path.get(method.lower(), {})
    declared = {"json"} if "requestBody" in operation else set()
    for parameter in [*path.get("parameters", []), *operation.get("parameters", [])]:
        declared.add({"header": "headers"}.get(parameter.get("in"), parameter.get("in")))
    return declared
