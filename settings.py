"""Conveyor's configuration: read once from the environment into one object.

Every process (web, workers, beat, the tests) gets its settings from here, so the
same variables mean the same thing everywhere. `.env.example` lists them all. Each
setting is declared once in settings_declared.py; settings_fields.py reads and checks
it from that declaration, and the checks across settings are below.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache

from settings_declared import (
    DEV_CORS_ORIGINS,
    DEV_SECRET,
    ENVIRONMENTS,
    LOG_FORMATS,
    PASSWORD_HASH_PROFILES,
    PRODUCTION_EXCEPTIONS,
    PROVIDERS,
    AccountSettings,
    JobSettings,
    OperationsSettings,
    ProcessSettings,
    ProviderSettings,
    ServiceSettings,
    StorageMailBillingSettings,
)
from settings_fields import ConfigError, RateLimit, parse_rate_limits, problems, read

MIN_SECRET_LENGTH = 32
FLOWER_DEV_USER = "admin:admin"  # development only; documented in the README
MIN_FLOWER_PASSWORD = 12
WEAK_PASSWORDS = ("admin", "change-me", "password", "changeme", "flower")

__all__ = [
    "DEV_CORS_ORIGINS",
    "DEV_SECRET",
    "ENVIRONMENTS",
    "LOG_FORMATS",
    "PASSWORD_HASH_PROFILES",
    "PRODUCTION_EXCEPTIONS",
    "PROVIDERS",
    "ConfigError",
    "RateLimit",
    "Settings",
    "get_settings",
    "parse_rate_limits",
]


# Bases in reverse so the fields keep the order of settings_declared.py.
@dataclass(frozen=True)
class Settings(
    ProcessSettings,
    OperationsSettings,
    JobSettings,
    StorageMailBillingSettings,
    ProviderSettings,
    AccountSettings,
    ServiceSettings,
):
    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def flower_users(self) -> list[str]:
        """Flower's basic-auth `user:password` pairs. Only Flower asks (flowerconfig.py), so a
        web or worker process never fails for want of them. Development falls back to the
        documented admin:admin; elsewhere FLOWER_BASIC_AUTH is required, and production
        refuses short or well-known passwords."""
        users = [pair.strip() for pair in self.flower_basic_auth.split(",") if pair.strip()]
        if not users:
            if self.env == "development":
                return [FLOWER_DEV_USER]
            raise ConfigError(
                f"FLOWER_BASIC_AUTH must be set (user:password) when CONVEYOR_ENV={self.env}: "
                "Flower can revoke tasks and shut down workers"
            )
        for pair in users:
            user, colon, password = pair.partition(":")
            if not user or not colon or not password:
                raise ConfigError(f"FLOWER_BASIC_AUTH entries look like user:password, got {user!r}…")
            if self.is_production and (len(password) < MIN_FLOWER_PASSWORD or password in WEAK_PASSWORDS):
                raise ConfigError(
                    f"FLOWER_BASIC_AUTH password for {user!r} must be at least {MIN_FLOWER_PASSWORD} "
                    "characters and not a default in production"
                )
        return users

    @property
    def billing_configured(self) -> bool:
        """Stripe billing is on only with a secret key; without one everyone stays on free."""
        return bool(self.stripe_secret_key)

    @property
    def reset_url_base(self) -> str:
        """The password reset link, to which the token is appended."""
        return self.frontend_reset_url or f"{self.public_base_url}/reset-password?token="

    @property
    def visibility_timeout(self) -> int:
        return self.broker_visibility_timeout or self.job_hard_time_limit + 300

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        declared = {spec.name: spec for spec in fields(cls)}
        production = read(declared["env"], environ, production=False) == "production"
        settings = cls(**{name: read(spec, environ, production) for name, spec in declared.items()})
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that would run badly; in production, refuse unsafe ones."""
        found = [problem for spec in fields(self) for problem in problems(spec, getattr(self, spec.name))]
        for cross_check in (_job_limits, _billing_and_provider, _model_catalogue, _production_safety):
            found.extend(cross_check(self))
        if found:
            unique = dict.fromkeys(found)  # settings checked together share one message
            raise ConfigError("Conveyor cannot start:\n  - " + "\n  - ".join(unique))


def _job_limits(settings: Settings) -> Iterator[str]:
    if settings.job_hard_time_limit <= settings.job_soft_time_limit:
        yield "JOB_HARD_TIME_LIMIT must be greater than JOB_SOFT_TIME_LIMIT"
    if (
        settings.broker_visibility_timeout
        and settings.broker_visibility_timeout <= settings.job_hard_time_limit
    ):
        yield (
            "BROKER_VISIBILITY_TIMEOUT must be longer than JOB_HARD_TIME_LIMIT, or a slow job "
            "would be handed to a second worker while the first still runs it"
        )
    if not 60 <= settings.stream_token_grace <= settings.stream_token_ttl:
        yield (
            "STREAM_TOKEN_GRACE must be at least 60 seconds and at most STREAM_TOKEN_TTL "
            f"({settings.stream_token_ttl}): a stream URL must outlive the job's end long enough "
            "to be opened, and never outlive its bound"
        )


def _billing_and_provider(settings: Settings) -> Iterator[str]:
    if settings.stripe_secret_key and not settings.stripe_webhook_secret:
        yield (
            "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: without Stripe's events "
            "no subscription would ever change a plan (set it from the webhook endpoint's signing secret)"
        )
    if settings.ai_provider == "openai" and not settings.openai_api_key:
        yield "AI_PROVIDER=openai needs OPENAI_API_KEY (use a dummy value for a local server)"


def _model_catalogue(settings: Settings) -> Iterator[str]:
    # The catalogue module lives with the workers that read it; imported here, late, so
    # every process (web, workers, beat, Flower) refuses a broken file as it starts.
    from workers import catalogue

    yield from catalogue.check(
        "MODEL_CATALOGUE_FILE", settings.model_catalogue_file, openai_in_use=settings.ai_provider == "openai"
    )


def _production_safety(settings: Settings) -> Iterator[str]:
    if not settings.is_production:
        return
    for name, value in (("SECRET_KEY", settings.secret_key), ("JWT_SECRET_KEY", settings.jwt_secret_key)):
        if value == DEV_SECRET or len(value) < MIN_SECRET_LENGTH:
            yield (
                f"{name} must be set to a random value of at least {MIN_SECRET_LENGTH} characters "
                "in production (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
    if settings.secret_key == settings.jwt_secret_key:
        yield "SECRET_KEY and JWT_SECRET_KEY must differ in production"
    if settings.password_hash_profile != PASSWORD_HASH_PROFILES[0]:
        yield (
            "PASSWORD_HASH_PROFILE=cheapest is for test suites; production stores passwords "
            "with rfc9106-low-memory (unset it)"
        )
    yield from _development_setup(settings)


def _development_setup(settings: Settings) -> Iterator[str]:
    """The defaults that make one machine work out of the box, which production refuses
    unless ALLOW_IN_PRODUCTION names them."""
    found = {
        "console-mail": settings.mail_url.split("://", 1)[0].lower() == "console"
        and "MAIL_URL=console:// writes emails (reset links included) to the log; "
        "set MAIL_URL=smtp://user:pass@host:587 or smtps://…",
        "file-storage": settings.storage_url.startswith("file://")
        and "STORAGE_URL=file://… keeps outputs on this host's disk, which a second web or worker "
        "host cannot read; set STORAGE_URL=s3://bucket[/prefix]",
        "offline-provider": settings.ai_provider == "offline"
        and "AI_PROVIDER=offline answers every job with canned text; set AI_PROVIDER=openai "
        "and OPENAI_API_KEY",
        "http-base-url": not settings.public_base_url.startswith("https://")
        and f"PUBLIC_BASE_URL={settings.public_base_url} is not https: links in emails would send "
        "tokens in clear; set PUBLIC_BASE_URL=https://your.host",
    }
    for name in PRODUCTION_EXCEPTIONS:
        if found[name] and name not in settings.allow_in_production:
            yield f"{found[name]} (or, knowingly, add {name} to ALLOW_IN_PRODUCTION)"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
