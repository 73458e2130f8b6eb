"""Conveyor's configuration: read once from the environment into one object.

Every process (web, workers, beat, the tests) gets its settings from here, so the
same variables mean the same thing everywhere. `.env.example` lists them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEV_SECRET = "dev-only-insecure-secret-change-me"  # noqa: S105 - refused in production
MIN_SECRET_LENGTH = 32
ENVIRONMENTS = ("development", "test", "production")
PROVIDERS = ("offline", "openai")


class ConfigError(RuntimeError):
    """The environment cannot run Conveyor; the message says what to change."""


@dataclass(frozen=True)
class RateLimit:
    """Requests and tokens one model may use per rate-limit window; None is no limit."""

    model: str  # `*`: every model without its own entry (each gets a budget of its own)
    requests: int | None = None
    tokens: int | None = None


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = "postgresql+psycopg2://postgres@localhost:5432/conveyor"
    redis_url: str = "redis://localhost:6379/0"
    broker_url: str = ""  # empty: the same Redis as redis_url
    secret_key: str = DEV_SECRET
    jwt_secret_key: str = DEV_SECRET
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600

    ai_provider: str = "offline"
    openai_api_key: str = ""
    openai_base_url: str = ""  # empty: the SDK's default (api.openai.com)
    openai_timeout: float = 60.0
    default_model: str = "gpt-4o-mini"
    provider_max_attempts: int = 4
    provider_backoff_base: float = 1.0
    provider_backoff_max: float = 30.0
    provider_rate_limits: tuple[RateLimit, ...] = ()  # empty: no local rate limit
    provider_rate_limit_max_wait: float = 60.0  # seconds a call may wait for capacity
    provider_rate_limit_window: int = 60  # seconds; rpm/tpm are per this window (shorter in tests)

    storage_url: str = field(default_factory=lambda: f"file://{Path.cwd() / 'var' / 'storage'}")
    s3_endpoint_url: str = ""
    mail_url: str = "console://"
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""

    max_request_bytes: int = 256 * 1024
    job_start_deadline: int = 3600  # a job not started by then ends `expired`
    job_soft_time_limit: int = 300
    job_hard_time_limit: int = 330
    job_lease_seconds: int = 60  # renewed while the job runs; lapsed means its worker died
    job_max_attempts: int = 3  # deliveries lost to dying workers before `worker_lost`
    broker_visibility_timeout: int = 0  # 0: job_hard_time_limit + 300
    broker_restore_interval: int = 10  # seconds between sweeps for unacked messages of dead workers
    sse_heartbeat_seconds: float = (
        15.0  # a comment line on an idle event stream keeps proxies from closing it
    )
    maintenance_interval: float = 15.0  # seconds between the beat's re-send and reaper runs
    requeue_stale_after: int = 900  # a queued job whose message may be lost is re-sent
    webhook_allowed_hosts: tuple[str, ...] = ()  # exempt from the private-address check (tests, LANs)
    webhook_timeout: float = 10.0
    webhook_max_age: int = 86400  # a webhook is retried for this long after its first attempt
    log_level: str = "INFO"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def visibility_timeout(self) -> int:
        return self.broker_visibility_timeout or self.job_hard_time_limit + 300

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        defaults = cls()
        settings = cls(
            env=reader.choice("CONVEYOR_ENV", defaults.env, ENVIRONMENTS),
            database_url=_sqlalchemy_url(reader.str("DATABASE_URL", defaults.database_url)),
            redis_url=reader.str("REDIS_URL", defaults.redis_url),
            broker_url=reader.str("CELERY_BROKER_URL", ""),
            secret_key=reader.str("SECRET_KEY", DEV_SECRET),
            jwt_secret_key=reader.str("JWT_SECRET_KEY", DEV_SECRET),
            access_token_ttl=reader.int("ACCESS_TOKEN_TTL", defaults.access_token_ttl),
            refresh_token_ttl=reader.int("REFRESH_TOKEN_TTL", defaults.refresh_token_ttl),
            ai_provider=reader.choice("AI_PROVIDER", defaults.ai_provider, PROVIDERS),
            openai_api_key=reader.str("OPENAI_API_KEY", ""),
            openai_base_url=reader.str("OPENAI_BASE_URL", ""),
            openai_timeout=reader.float("OPENAI_TIMEOUT", defaults.openai_timeout),
            default_model=reader.str("DEFAULT_MODEL", defaults.default_model),
            provider_max_attempts=reader.int("PROVIDER_MAX_ATTEMPTS", defaults.provider_max_attempts),
            provider_backoff_base=reader.float("PROVIDER_BACKOFF_BASE", defaults.provider_backoff_base),
            provider_backoff_max=reader.float("PROVIDER_BACKOFF_MAX", defaults.provider_backoff_max),
            provider_rate_limits=parse_rate_limits(reader.str("PROVIDER_RATE_LIMITS", "")),
            provider_rate_limit_max_wait=reader.float(
                "PROVIDER_RATE_LIMIT_MAX_WAIT", defaults.provider_rate_limit_max_wait
            ),
            provider_rate_limit_window=reader.int(
                "PROVIDER_RATE_LIMIT_WINDOW", defaults.provider_rate_limit_window
            ),
            storage_url=reader.str("STORAGE_URL", defaults.storage_url),
            s3_endpoint_url=reader.str("S3_ENDPOINT_URL", ""),
            mail_url=reader.str("MAIL_URL", defaults.mail_url),
            stripe_secret_key=reader.str("STRIPE_SECRET_KEY", ""),
            stripe_webhook_secret=reader.str("STRIPE_WEBHOOK_SECRET", ""),
            max_request_bytes=reader.int("MAX_REQUEST_BYTES", defaults.max_request_bytes),
            job_start_deadline=reader.int("JOB_START_DEADLINE", defaults.job_start_deadline),
            job_soft_time_limit=reader.int("JOB_SOFT_TIME_LIMIT", defaults.job_soft_time_limit),
            job_hard_time_limit=reader.int("JOB_HARD_TIME_LIMIT", defaults.job_hard_time_limit),
            job_lease_seconds=reader.int("JOB_LEASE_SECONDS", defaults.job_lease_seconds),
            job_max_attempts=reader.int("JOB_MAX_ATTEMPTS", defaults.job_max_attempts),
            broker_visibility_timeout=reader.int("BROKER_VISIBILITY_TIMEOUT", 0),
            broker_restore_interval=reader.int("BROKER_RESTORE_INTERVAL", defaults.broker_restore_interval),
            sse_heartbeat_seconds=reader.float("SSE_HEARTBEAT_SECONDS", defaults.sse_heartbeat_seconds),
            maintenance_interval=reader.float("MAINTENANCE_INTERVAL", defaults.maintenance_interval),
            requeue_stale_after=reader.int("REQUEUE_STALE_AFTER", defaults.requeue_stale_after),
            webhook_allowed_hosts=reader.list("WEBHOOK_ALLOWED_HOSTS"),
            webhook_timeout=reader.float("WEBHOOK_TIMEOUT", defaults.webhook_timeout),
            webhook_max_age=reader.int("WEBHOOK_MAX_AGE", defaults.webhook_max_age),
            log_level=reader.str("LOG_LEVEL", defaults.log_level).upper(),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that would run badly; in production, refuse unsafe ones."""
        problems = []
        if self.job_hard_time_limit <= self.job_soft_time_limit:
            problems.append("JOB_HARD_TIME_LIMIT must be greater than JOB_SOFT_TIME_LIMIT")
        if self.job_lease_seconds < 3:
            problems.append("JOB_LEASE_SECONDS must be at least 3")
        if self.broker_visibility_timeout and self.broker_visibility_timeout <= self.job_hard_time_limit:
            problems.append(
                "BROKER_VISIBILITY_TIMEOUT must be longer than JOB_HARD_TIME_LIMIT, or a slow job "
                "would be handed to a second worker while the first still runs it"
            )
        if self.provider_max_attempts < 1:
            problems.append("PROVIDER_MAX_ATTEMPTS must be at least 1")
        if self.webhook_timeout <= 0:
            problems.append("WEBHOOK_TIMEOUT must be greater than 0")
        if self.provider_rate_limit_window < 1:
            problems.append("PROVIDER_RATE_LIMIT_WINDOW must be at least 1 (second)")
        if self.provider_rate_limit_max_wait < 0:
            problems.append("PROVIDER_RATE_LIMIT_MAX_WAIT must not be negative")
        if self.ai_provider == "openai" and not self.openai_api_key:
            problems.append("AI_PROVIDER=openai needs OPENAI_API_KEY (use a dummy value for a local server)")
        if self.is_production:
            for name, value in (("SECRET_KEY", self.secret_key), ("JWT_SECRET_KEY", self.jwt_secret_key)):
                if value == DEV_SECRET or len(value) < MIN_SECRET_LENGTH:
                    problems.append(
                        f"{name} must be set to a random value of at least {MIN_SECRET_LENGTH} characters "
                        "in production (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                    )
            if self.secret_key == self.jwt_secret_key:
                problems.append("SECRET_KEY and JWT_SECRET_KEY must differ in production")
        if problems:
            raise ConfigError("Conveyor cannot start:\n  - " + "\n  - ".join(problems))


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def str(self, name: str, default: str) -> str:
        value = self.environ.get(name, "").strip()
        return value or default

    def int(self, name: str, default: int) -> int:
        raw = self.str(name, "")
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None

    def float(self, name: str, default: float) -> float:
        raw = self.str(name, "")
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None

    def list(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, lower-cased (host names)."""
        return tuple(item.strip().lower() for item in self.str(name, "").split(",") if item.strip())

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.str(name, default).lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value


def _sqlalchemy_url(url: str) -> str:
    """Accept the `postgres://` and `postgresql://` forms that PaaS hosts hand out."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


_RATE_PART = re.compile(r"(\d+)\s*(rpm|tpm)", re.IGNORECASE)


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
        found[model] = RateLimit(model, requests=amounts.get("rpm"), tokens=amounts.get("tpm"))
    return tuple(found.values())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
