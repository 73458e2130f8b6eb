"""The models a deployment offers, read from the operator's catalogue file
(MODEL_CATALOGUE_FILE; workers/model_catalogue.json by default): who serves each one
(OpenAI, or a named OpenAI-compatible endpoint), what it costs per lane, its context
window, the plans that may use it and where a job goes when it is down.

Prices are written as on a provider's price list, US dollars per million tokens, and
kept as integer micro-dollars per million tokens, so a token costs the listed figure in
micro-dollars. A lane is how a call is sold: `standard`, `flex` (OpenAI's
`service_tier: "flex"`) or `batch` (the Batch API); a model supports the lanes it has
prices for. The file is checked when a process starts (settings.Settings.check), and a
mistake is reported with the file, the model and the field to fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

# The lanes, named where a job and the ledger store them.
from db.models.job import BATCH as BATCH
from db.models.job import FLEX as FLEX
from db.models.job import LANES as LANES
from db.models.job import STANDARD

if TYPE_CHECKING:
    from settings import Settings

OPENAI = "openai"  # the provider configured by OPENAI_BASE_URL and OPENAI_API_KEY
DEFAULT_FILE = Path(__file__).with_name("model_catalogue.json")
MICROS = Decimal(1_000_000)


@dataclass(frozen=True)
class Prices:
    """Micro-dollars per million tokens (= micro-dollars per token x 10^6)."""

    input: int = 0
    cached_input: int = 0
    output: int = 0

    def cost_micros(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> int:
        fresh = max(0, input_tokens - cached_input_tokens)
        total = fresh * self.input + cached_input_tokens * self.cached_input + output_tokens * self.output
        return -(-total // 1_000_000)  # round up: never bill less than a started micro-dollar


FREE = Prices()


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server; its key is read from the variable `api_key_env`."""

    name: str
    base_url: str
    api_key_env: str

    @property
    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "")


@dataclass(frozen=True)
class Model:
    name: str
    provider: str = OPENAI  # OPENAI or the name of one of the catalogue's endpoints
    prices: dict[str, Prices] = field(default_factory=lambda: {STANDARD: FREE})
    context_window: int | None = None
    plans: tuple[str, ...] | None = None  # None: every plan
    fallbacks: tuple[str, ...] = ()

    def supports(self, lane: str) -> bool:
        return lane in self.prices

    def price(self, lane: str = STANDARD) -> Prices:
        """The lane's prices; a lane the model does not sell is charged as standard."""
        return self.prices.get(lane) or self.prices[STANDARD]

    def allows(self, plan: str) -> bool:
        return self.plans is None or plan in self.plans


@dataclass(frozen=True)
class Catalogue:
    models: dict[str, Model]
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    source: str = ""

    def names(self) -> list[str]:
        return list(self.models)

    def model(self, name: str) -> Model | None:
        """Exact name first, then the longest listed prefix ("gpt-4o-mini-2024-07-18"),
        as a provider reports a dated snapshot of the model asked for."""
        if name in self.models:
            return self.models[name]
        prefixes = [listed for listed in self.models if name.startswith(listed)]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def price(self, model: str, *, lane: str = STANDARD) -> Prices:
        """What `model` costs on `lane`; nothing for a model not in the catalogue (the
        offline provider, or a self-hosted DEFAULT_MODEL left out of it)."""
        found = self.model(model)
        return found.price(lane) if found is not None else FREE

    def cost_micros(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        *,
        lane: str = STANDARD,
        cached_input_tokens: int = 0,
    ) -> int:
        return self.price(model, lane=lane).cost_micros(input_tokens, output_tokens, cached_input_tokens)

    def endpoint(self, model: str) -> Endpoint | None:
        """Where `model` is served; None: the OPENAI_* settings' server."""
        found = self.model(model)
        return None if found is None or found.provider == OPENAI else self.endpoints[found.provider]

    def provider_of(self, model: str) -> str:
        found = self.model(model)
        return found.provider if found is not None else OPENAI


# ---------------------------------------------------------------- the file


class _PricesSchema(Schema):
    class Meta:
        unknown = RAISE

    input = fields.Decimal(required=True, validate=validate.Range(min=0))
    cached_input = fields.Decimal(validate=validate.Range(min=0))  # default: the input price
    output = fields.Decimal(required=True, validate=validate.Range(min=0))


class _LanePricesSchema(Schema):
    class Meta:
        unknown = RAISE

    standard = fields.Nested(_PricesSchema, required=True)
    flex = fields.Nested(_PricesSchema)
    batch = fields.Nested(_PricesSchema)


class _ModelSchema(Schema):
    class Meta:
        unknown = RAISE

    provider = fields.String(load_default=OPENAI, validate=validate.Length(min=1))
    prices = fields.Nested(_LanePricesSchema, required=True)
    context_window = fields.Integer(strict=True, validate=validate.Range(min=1))
    plans = fields.List(fields.String(), validate=validate.Length(min=1))
    fallbacks = fields.List(fields.String(), load_default=list)


class _EndpointSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    api_key_env = fields.String(required=True, validate=validate.Regexp(r"^[A-Z_][A-Z0-9_]*$"))


class _CatalogueSchema(Schema):
    class Meta:
        unknown = RAISE

    endpoints = fields.Dict(keys=fields.String(), values=fields.Nested(_EndpointSchema), load_default=dict)
    models = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=128)),
        values=fields.Nested(_ModelSchema),
        required=True,
        validate=validate.Length(min=1),
    )

    @validates_schema
    def _names_exist(self, data: dict, **_: object) -> None:
        errors: dict[str, dict[str, list[str]]] = {}
        known_plans = _plan_names()
        for name, model in data["models"].items():
            found: dict[str, list[str]] = {}
            provider = model["provider"]
            if provider != OPENAI and provider not in data["endpoints"]:
                found["provider"] = [
                    f"{provider!r} is neither {OPENAI!r} nor an endpoint of this file "
                    f"({', '.join(data['endpoints']) or 'none are declared'})."
                ]
            unknown_plans = [plan for plan in model.get("plans", ()) if plan not in known_plans]
            if unknown_plans:
                found["plans"] = [f"Unknown plan(s) {unknown_plans}; plans are {', '.join(known_plans)}."]
            bad = [other for other in model["fallbacks"] if other not in data["models"] or other == name]
            if bad:
                found["fallbacks"] = [f"{bad} must be other models of this catalogue."]
            if found:
                errors[name] = found
        if errors:
            raise ValidationError({"models": errors})


def _plan_names() -> tuple[str, ...]:
    from workers.plans import ORDER  # plans name tools, tools name models: read late

    return ORDER


def parse(text: str, *, source: str = "") -> Catalogue:
    """A catalogue from the file's text; ValueError naming each field to fix."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"it is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    try:
        data = _CatalogueSchema().load(raw)
    except ValidationError as error:
        raise ValueError("; ".join(_problems(error.messages))) from None
    endpoints = {
        name: Endpoint(name, spec["base_url"], spec["api_key_env"])
        for name, spec in data["endpoints"].items()
    }
    models = {}
    for name, spec in data["models"].items():
        models[name] = Model(
            name=name,
            provider=spec["provider"],
            prices={lane: _prices(given) for lane, given in spec["prices"].items()},
            context_window=spec.get("context_window"),
            plans=tuple(spec["plans"]) if "plans" in spec else None,
            fallbacks=tuple(spec["fallbacks"]),
        )
    return Catalogue(models, endpoints, source)


def _prices(given: dict[str, Decimal]) -> Prices:
    def micros(dollars: Decimal) -> int:
        return int((dollars * MICROS).to_integral_value())

    cached = given.get("cached_input", given["input"])
    return Prices(input=micros(given["input"]), cached_input=micros(cached), output=micros(given["output"]))


def _problems(messages: object, path: tuple[str, ...] = ()) -> Iterator[str]:
    """marshmallow's nested messages as `models.gpt-4o.prices.standard.input: why`."""
    if isinstance(messages, dict):
        for key, inner in messages.items():
            if key == "value":  # a Dict field's values: the key is the path already
                yield from _problems(inner, path)
            else:
                yield from _problems(inner, (*path, str(key)))
    elif isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        where = _where(path)
        yield f"{where}: {' '.join(messages)}" if where else " ".join(messages)
    elif isinstance(messages, Iterable) and not isinstance(messages, str):
        for item in messages:
            yield from _problems(item, path)
    else:
        yield f"{_where(path)}: {messages}"


def _where(path: tuple[str, ...]) -> str:
    if len(path) >= 2 and path[0] == "models":
        rest = ".".join(path[2:])
        return f"model {path[1]!r}" + (f", field {rest!r}" if rest else "")
    if len(path) >= 2 and path[0] == "endpoints":
        rest = ".".join(path[2:])
        return f"endpoint {path[1]!r}" + (f", field {rest!r}" if rest else "")
    return ".".join(path)


@lru_cache(maxsize=8)
def load(path: str) -> Catalogue:
    """The catalogue in the file at `path` (read once per process); ValueError with what to fix."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot be read ({error.strerror or error})") from None
    return parse(text, source=path)


def check(name: str, path: str, *, openai_in_use: bool) -> Iterator[str]:
    """What is wrong with the catalogue file, each problem naming the file, the model and
    the field (Settings.check reports them all at start-up). A DEFAULT_MODEL the file
    does not list is allowed: a self-hosted model served at OPENAI_BASE_URL, unpriced."""
    try:
        catalogue = load(path)
    except ValueError as error:
        yield f"{name} ({path}): {error}"
        return
    if not openai_in_use:
        return
    for endpoint in catalogue.endpoints.values():
        if not endpoint.api_key:
            yield (
                f"{name} ({path}): endpoint {endpoint.name!r} reads its key from {endpoint.api_key_env}, "
                "which is not set (use a dummy value for a server that needs none)"
            )


def get_catalogue(settings: Settings) -> Catalogue:
    """The catalogue the settings name (Settings.check has refused a broken one)."""
    return load(settings.model_catalogue_file)


def offered(settings: Settings) -> list[str]:
    """Models a job may ask for: the catalogue's, and the configured default (which may be
    a self-hosted model the catalogue leaves out)."""
    models = get_catalogue(settings).names()
    if settings.default_model not in models:
        models.append(settings.default_model)
    return models
