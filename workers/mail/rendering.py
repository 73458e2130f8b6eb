"""Email templates: each has a subject, a text and an HTML body under templates/
(`<name>.subject.txt`, `<name>.txt`, `<name>.html`), rendered with Jinja2.

A context variable a template uses but the caller did not give raises
MissingVariable (StrictUndefined) rather than rendering a blank. The HTML is
autoescaped. Every template also sees `public_base_url` (PUBLIC_BASE_URL).

The contexts, by template (all JSON values; `link`s are absolute URLs):

    verify_email    link (no name: the address is a stranger's until the link is used)
    password_reset  link, expires_in_minutes (no name, for the same reason)
    job_finished    name, job_id, tool, status, error_code, error_message (both null unless it failed)
    export_ready    name, link, expires_at (ISO 8601)
    payment_failed  name, amount (as shown, e.g. "$20.00"), portal_link
    daily_report    report: {date, jobs_by_tool: {tool: {status: n}}, failures_by_code: {code: n},
                    tokens: {input, output}, cost_micros, queue_latency_seconds: {p50, p95} (null: no jobs)}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from settings import Settings

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATES = (
    "verify_email",
    "password_reset",
    "job_finished",
    "export_ready",
    "payment_failed",
    "daily_report",
)


class UnknownTemplate(ValueError):
    pass


class MissingVariable(ValueError):
    pass


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def check_name(template: str) -> None:
    if template not in TEMPLATES:
        raise UnknownTemplate(f"No email template {template!r}. Known: {', '.join(TEMPLATES)}.")


def render(template: str, context: dict[str, Any], *, settings: Settings) -> Rendered:
    check_name(template)
    from jinja2 import UndefinedError  # with the templates: the AI workers load this module, never render

    values = {**context, "public_base_url": settings.public_base_url}
    text_env, html_env = _environments()
    try:
        subject = text_env.get_template(f"{template}.subject.txt").render(values)
        text = text_env.get_template(f"{template}.txt").render(values)
        html = html_env.get_template(f"{template}.html").render(values)
    except UndefinedError as error:
        raise MissingVariable(f"Email template {template!r}: {error}.") from error
    # One line, whatever the template or a name in it holds: a header cannot be split.
    return Rendered(subject=" ".join(subject.split()), text=text, html=html)


def format_when(value: str | dt.datetime) -> str:
    """`2026-11-22T03:10:00+00:00` → `22 Nov 2026, 03:10 UTC`."""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return when.strftime("%d %b %Y, %H:%M UTC")


def format_micros(value: int) -> str:
    """Integer micro-dollars as dollars: 1234567 → `$1.2346`."""
    return f"${value / 1_000_000:,.4f}"


@lru_cache(maxsize=1)
def _environments() -> tuple[Environment, Environment]:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    loader = FileSystemLoader(TEMPLATE_DIR)
    text_env = Environment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - plain text and subjects; the HTML environment escapes
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    html_env = Environment(
        loader=loader, undefined=StrictUndefined, autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    for env in (text_env, html_env):
        env.filters["when"] = format_when
        env.filters["dollars"] = format_micros
    return text_env, html_env
