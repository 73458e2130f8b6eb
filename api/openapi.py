"""What the OpenAPI spec says each operation accepts and answers, derived in one place
from what the operation does rather than written out on every view.

The decorators that decide who may call (api.auth) and how often (api.request_limits) mark
the view they wrap with `documented`; `OperationResponses`, an apispec plugin, reads the
marks and the operation's own shape when flask-smorest registers the view, and adds:

- `security`: the credentials the operation accepts (`[]`: none);
- 401/403 from the auth decorator, 429 from a rate limit;
- 400, 413 and 422 when it takes a JSON body (unreadable, too large, invalid);
- 422 when it takes query or header arguments;
- 404 when its URL has a path parameter (a malformed one, or someone else's object),
  and 422 when that parameter is text (the input gate refuses what cannot be stored);
- 503 on every operation: Postgres or Redis being down is answered, never a 500.

Each of them is the one error shape (`ErrorSchema`). A status only a view's own rules
can answer (a 409 from a duplicate, a 402 from billing) is marked on that view with
`documented(statuses=...)`. Nothing here runs per request: the marks are attributes
read once, when the spec is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from apispec import BasePlugin
from flask import Flask

# Security requirements, as the spec's security schemes name them (api/__init__.py).
TOKEN_OR_KEY = [{"bearerAuth": []}, {"apiKeyAuth": []}]
TOKEN_ONLY = [{"bearerAuth": []}]

SECURITY_MARK = "openapi_security"
STATUSES_MARK = "openapi_statuses"
ALWAYS = frozenset({HTTPStatus.SERVICE_UNAVAILABLE})
WITH_BODY = frozenset(
    {HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.UNPROCESSABLE_ENTITY}
)
WITH_ARGUMENTS = frozenset({HTTPStatus.UNPROCESSABLE_ENTITY})
WITH_PATH_PARAMETERS = frozenset({HTTPStatus.NOT_FOUND})
WITH_TEXT_PATH_PARAMETERS = frozenset({HTTPStatus.UNPROCESSABLE_ENTITY})
# A werkzeug rule's variables, `<name>` or `<converter(arguments):name>`.
RULE_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
TEXT_CONVERTERS = {None, "string", "path"}


def documented(*, security: list[dict] | None = None, statuses: Iterable[int] = ()) -> Callable:
    """Mark a view with the credentials it accepts and the statuses it may answer, for
    the spec. Marks add up through the decorators stacked on a view (functools.wraps
    carries them outward)."""

    def mark(view: Callable) -> Callable:
        if security is not None:
            setattr(view, SECURITY_MARK, security)
        setattr(view, STATUSES_MARK, getattr(view, STATUSES_MARK, frozenset()) | frozenset(statuses))
        return view

    return mark


class OperationResponses(BasePlugin):
    """Completes each operation's `security` and `responses` from its view's marks and
    its shape (see the module docstring). Statuses the view documents itself (e.g. a
    422 with a schema of its own) are left as they are."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        view = self.app.view_functions[rule.endpoint]
        converters = {match["converter"] for match in RULE_VARIABLE.finditer(rule.rule)}
        for operation in operations.values():
            operation["security"] = getattr(view, SECURITY_MARK, [])
            responses = operation.setdefault("responses", {})
            for status in sorted(self._statuses(view, operation, converters)):
                if status not in responses and str(status) not in responses:
                    # flask-smorest registers a response per status, in the error shape.
                    responses[int(status)] = HTTPStatus(status).name

    @staticmethod
    def _statuses(view: Callable, operation: dict, converters: set[str | None]) -> frozenset[int]:
        statuses = ALWAYS | getattr(view, STATUSES_MARK, frozenset())
        if "requestBody" in operation:
            statuses |= WITH_BODY
        if any(parameter.get("in") in ("query", "header") for parameter in operation.get("parameters", [])):
            statuses |= WITH_ARGUMENTS
        if converters:
            statuses |= WITH_PATH_PARAMETERS
        if converters & TEXT_CONVERTERS:
            statuses |= WITH_TEXT_PATH_PARAMETERS
        return statuses
