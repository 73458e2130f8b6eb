"""How one setting is declared, read from the environment and checked (used by settings.py).

A setting is a dataclass field whose metadata names its environment variable, how its text
is parsed, what a valid value is and what it is for; `read` and `problems` derive the rest
from that one declaration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import Field, dataclass, field
from typing import Any

# (variable name, its non-empty text) -> the value; raises ConfigError with what to fix.
Parse = Callable[[str, str], Any]
# (variable name, the value) -> what is wrong with it, one message per problem.
Check = Callable[[str, Any], Iterable[str]]


class ConfigError(RuntimeError):
    """The environment cannot run Conveyor; the message says what to change."""


@dataclass(frozen=True)
class RateLimit:
    """Requests and tokens one model may use per rate-limit window; None is no limit."""

    model: str  # `*`: every model without its own entry (each gets a budget of its own)
    requests: int | None = None
    tokens: int | None = None


def setting(
    env: str,
    default: Any = "",
    *,
    doc: str,
    parse: Parse | None = None,
    check: Check | None = None,
    default_for: Callable[[bool], Any] | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A Settings field read from `env`; unset or blank gives `default` (or `factory()`), or
    `default_for(production)` where the default depends on CONVEYOR_ENV."""
    metadata = {"env": env, "doc": doc, "parse": parse or text, "check": check, "default_for": default_for}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def read(spec: Field[Any], environ: Mapping[str, str], production: bool) -> Any:
    """The value of one declared setting in `environ`."""
    meta = spec.metadata
    raw = environ.get(meta["env"], "").strip()
    if raw:
        return meta["parse"](meta["env"], raw)
    if meta["default_for"] is not None:
        return meta["default_for"](production)
    return spec.default_factory() if callable(spec.default_factory) else spec.default


def problems(spec: Field[Any], value: Any) -> Iterable[str]:
    """What is wrong with one declared setting's value on its own."""
    check = spec.metadata.get("check")
    return check(spec.metadata["env"], value) if check else ()


# Parsers


def text(name: str, raw: str) -> str:
    return raw


def whole(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def number(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def flag(name: str, raw: str) -> bool:
    value = raw.lower()
    if value not in _TRUE + _FALSE:
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return value in _TRUE


def one_of(allowed: tuple[str, ...]) -> Parse:
    def parse(name: str, raw: str) -> str:
        value = raw.lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value

    return parse


def names(name: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list, lower-cased (host names, origins)."""
    return tuple(item.strip().lower() for item in raw.split(",") if item.strip())


def base_url(name: str, raw: str) -> str:
    """A URL that paths are appended to: no trailing slash."""
    return raw.rstrip("/")


def upper(name: str, raw: str) -> str:
    return raw.upper()


def sqlalchemy_url(name: str, raw: str) -> str:
    """Accept the `postgres://` and `postgresql://` forms that PaaS hosts hand out."""
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg2://" + raw[len(prefix) :]
    return raw


_RATE_PART = re.compile(r"(\d+)\s*(rpm|tpm)", re.IGNORECASE)


def rate_limits(name: str, raw: str) -> tuple[RateLimit, ...]:
    return parse_rate_limits(raw)


def parse_rate_limits(text: str) -> tuple[RateLimit, ...]:
    """Parse PROVIDER_RATE_LIMITS, e.g. `gpt-4o=100rpm/30000tpm,*=60rpm` (either part optional)."""
    found: dict[str, RateLimit] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        model, equals, spec = (piece.strip() for piece in entry.rpartition("="))
        if not equals or not model or not spec:
            raise ConfigError(
                f"PROVIDER_RATE_LIMITS entry {entry!r} must look like model=500rpm/200000tpm "
                "(`*` for every other model; either part may be left out)"
            )
        if model in found:
            raise ConfigError(f"PROVIDER_RATE_LIMITS names model {model!r} twice")
        amounts = _rate_amounts(model, spec)
        found[model] = RateLimit(model, requests=amounts.get("rpm"), tokens=amounts.get("tpm"))
    return tuple(found.values())


def _rate_amounts(model: str, spec: str) -> dict[str, int]:
    amounts: dict[str, int] = {}
    for piece in (piece.strip() for piece in spec.split("/")):
        match = _RATE_PART.fullmatch(piece)
        if match is None:
            raise ConfigError(
                f"PROVIDER_RATE_LIMITS for {model!r}: {piece!r} must be a whole number followed by "
                "rpm (requests) or tpm (tokens), e.g. 500rpm/200000tpm"
            )
        unit, amount = match.group(2).lower(), int(match.group(1))
        if unit in amounts:
            raise ConfigError(f"PROVIDER_RATE_LIMITS for {model!r} gives {unit} twice")
        if amount < 1:
            raise ConfigError(f"PROVIDER_RATE_LIMITS for {model!r}: {unit} must be at least 1")
        amounts[unit] = amount
    return amounts


# Checks


def ensure(valid: Callable[[Any], bool], message: str) -> Check:
    """A check refusing a value `valid` rejects; the message may use {name} and {value}."""

    def check(name: str, value: Any) -> Iterator[str]:
        if not valid(value):
            yield message.format(name=name, value=value)

    return check


def at_least(minimum: float, unit: str = "") -> Check:
    return ensure(lambda value: value >= minimum, "{name} must be at least " + f"{minimum}{unit}")


def positive() -> Check:
    return ensure(lambda value: value > 0, "{name} must be greater than 0")


def not_negative() -> Check:
    return ensure(lambda value: value >= 0, "{name} must not be negative")


def rate_limit() -> Check:
    return ensure(_is_rate_limit, "{name} must be a rate limit such as 5/minute or 100/hour;1000/day")


def _is_rate_limit(text: str) -> bool:
    from limits import parse_many

    try:
        return bool(parse_many(text))
    except ValueError:
        return False


BASE_URL = re.compile(r"https?://[^/\s]+")  # scheme, host, optional port: no path
_ORIGIN = re.compile(r"\*|" + BASE_URL.pattern)


def origins(name: str, values: tuple[str, ...]) -> Iterator[str]:
    for origin in values:
        if not _ORIGIN.fullmatch(origin):
            yield (
                f"{name} entry {origin!r} must be an origin such as https://app.example.com "
                "(scheme and host, optional port, no path or trailing slash)"
            )


def url_scheme(schemes: tuple[str, ...], message: str) -> Check:
    return ensure(lambda url: "://" in url and url.split("://", 1)[0].lower() in schemes, message)


def ca_bundle(name: str, path: str) -> Iterator[str]:
    """Refuse a CA bundle a TLS client could not load, for the reason it gives."""
    import ssl

    if not path:
        return
    try:
        ssl.create_default_context(cafile=path)
    except OSError as error:  # missing, unreadable, or (ssl.SSLError) no certificate in it
        reason = error.strerror or error
        yield f"{name} must name a PEM file of CA certificates: {path!r} cannot be used ({reason})"
