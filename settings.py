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
# argon2id parameters for stored passwords (api/services/passwords.py): RFC 9106's
# low-memory choice (64 MiB, 3 passes), or the cheapest argon2id for test suites.
PASSWORD_HASH_PROFILES = ("rfc9106-low-memory", "cheapest")
LOG_FORMATS = ("json", "text")
DEV_CORS_ORIGINS = ("http://localhost:3000",)
FLOWER_DEV_USER = "admin:admin"  # development only; documented in the README
MIN_FLOWER_PASSWORD = 12
WEAK_PASSWORDS = ("admin", "change-me", "password", "changeme", "flower")
_BASE_URL = re.compile(r"https?://[^/\s]+")  # scheme, host, optional port: no path
_ORIGIN = re.compile(r"\*|" + _BASE_URL.pattern)


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
    # Connections each process opens as it needs them, up to db_pool_size, and keeps; and
    # may open beyond that under load, closed again when returned. A gevent web worker runs
    # many requests at once (see the README): one that got more than the kept number at
    # once opened (and Postgres forked) a connection on most requests, so all 15 are kept.
    db_pool_size: int = 15
    db_max_overflow: int = 0
    redis_url: str = "redis://localhost:6379/0"
    broker_url: str = ""  # empty: the same Redis as redis_url
    secret_key: str = DEV_SECRET
    jwt_secret_key: str = DEV_SECRET
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600
    # flask-limiter strings ("5/minute", "100/hour;1000/day"), counted in Redis across processes.
    login_rate_limit_per_account: str = "5/minute"
    login_rate_limit_per_ip: str = "20/minute"
    # per email address (per IP: login_rate_limit_per_ip)
    forgot_password_rate_limit: str = "3/hour"  # noqa: S105 - a rate, not a password
    email_verification_ttl: int = 3 * 24 * 3600  # seconds a verification link works
    password_reset_ttl: int = 3600  # seconds a password reset link works
    frontend_reset_url: str = ""  # token appended; empty: {public_base_url}/reset-password?token=
    # `cheapest` is refused in production
    password_hash_profile: str = PASSWORD_HASH_PROFILES[0]

    ai_provider: str = "offline"
    openai_api_key: str = ""
    openai_base_url: str = ""  # empty: the SDK's default (api.openai.com)
    openai_timeout: float = 60.0  # seconds a call may wait for each read or write
    openai_connect_timeout: float = 10.0  # seconds to make a connection (at most openai_timeout)
    default_model: str = "gpt-4o-mini"
    provider_max_attempts: int = 4
    provider_backoff_base: float = 1.0
    provider_backoff_max: float = 30.0
    provider_rate_limits: tuple[RateLimit, ...] = ()  # empty: no local rate limit
    provider_rate_limit_max_wait: float = 60.0  # seconds a call may wait for capacity
    provider_rate_limit_window: int = 60  # seconds; rpm/tpm are per this window (shorter in tests)

    storage_url: str = field(default_factory=lambda: f"file://{Path.cwd() / 'var' / 'storage'}")
    s3_endpoint_url: str = ""
    # Where clients reach the store, if not at s3_endpoint_url (docker-compose: localhost, not
    # minio): presigned links are made for it. Empty: s3_endpoint_url (or AWS).
    s3_public_endpoint_url: str = ""
    output_inline_max_bytes: int = 64 * 1024  # larger outputs (as JSON) go to storage, not the row
    download_url_ttl: int = 900  # seconds a presigned download URL works (at most 900)
    mail_url: str = "console://"
    mail_from: str = "Conveyor <no-reply@localhost>"
    public_base_url: str = "http://localhost:8000"  # links in emails point here
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = "https://api.stripe.com"  # a local stand-in in tests
    # A PEM file of the CAs the Stripe SDK trusts instead of its own bundle (a TLS-inspecting
    # proxy, a private stand-in). The SDK ignores SSL_CERT_FILE and REQUESTS_CA_BUNDLE.
    stripe_ca_bundle: str = ""
    stripe_price_pro: str = ""  # Stripe price ids the checkout sells; empty: the plan is not for sale
    stripe_price_business: str = ""
    billing_portal_url: str = ""  # linked from payment-failed emails; empty: the invoice's payment page

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
    # A job's urls.stream (api/services/stream_tokens.py): it works for at most this many
    # seconds after it was handed out, and for this grace after the job ended.
    stream_token_ttl: int = 24 * 3600
    stream_token_grace: int = 600
    maintenance_interval: float = 15.0  # seconds between the beat's re-send and reaper runs
    requeue_stale_after: int = 900  # a queued job whose message may be lost is re-sent
    webhook_allowed_hosts: tuple[str, ...] = ()  # exempt from the private-address check (tests, LANs)
    webhook_timeout: float = 10.0
    webhook_max_age: int = 86400  # a webhook is retried for this long after its first attempt
    cleanup_interval: float = 3600.0  # seconds between the beat's retention and account clean-ups
    unverified_account_days: int = 7  # accounts still unverified after this many days are removed
    refresh_token_retention_days: int = 7  # refresh-token rows are removed this many days after expiry
    daily_report_hour: int = 6  # UTC hour the beat emails the admins yesterday's report
    log_level: str = "INFO"
    log_format: str = "text"  # json | text; from_env makes json the default in production
    cors_origins: tuple[str, ...] = ()  # browser origins that may call the API
    metrics_port: int = 0  # a Celery worker serves /metrics here; 0: none (the Procfile sets one per worker)
    worker_heartbeat_interval: float = 5.0  # seconds between a worker's "alive on these queues" in Redis
    flower_basic_auth: str = ""  # user:password[,…]; Flower refuses to start without it outside development

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
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        defaults = cls()
        production = reader.choice("CONVEYOR_ENV", defaults.env, ENVIRONMENTS) == "production"
        settings = cls(
            env=reader.choice("CONVEYOR_ENV", defaults.env, ENVIRONMENTS),
            database_url=_sqlalchemy_url(reader.str("DATABASE_URL", defaults.database_url)),
            db_pool_size=reader.int("DB_POOL_SIZE", defaults.db_pool_size),
            db_max_overflow=reader.int("DB_MAX_OVERFLOW", defaults.db_max_overflow),
            redis_url=reader.str("REDIS_URL", defaults.redis_url),
            broker_url=reader.str("CELERY_BROKER_URL", ""),
            secret_key=reader.str("SECRET_KEY", DEV_SECRET),
            jwt_secret_key=reader.str("JWT_SECRET_KEY", DEV_SECRET),
            access_token_ttl=reader.int("ACCESS_TOKEN_TTL", defaults.access_token_ttl),
            refresh_token_ttl=reader.int("REFRESH_TOKEN_TTL", defaults.refresh_token_ttl),
            login_rate_limit_per_account=reader.str(
                "LOGIN_RATE_LIMIT_PER_ACCOUNT", defaults.login_rate_limit_per_account
            ),
            login_rate_limit_per_ip=reader.str("LOGIN_RATE_LIMIT_PER_IP", defaults.login_rate_limit_per_ip),
            forgot_password_rate_limit=reader.str(
                "FORGOT_PASSWORD_RATE_LIMIT", defaults.forgot_password_rate_limit
            ),
            email_verification_ttl=reader.int("EMAIL_VERIFICATION_TTL", defaults.email_verification_ttl),
            password_reset_ttl=reader.int("PASSWORD_RESET_TTL", defaults.password_reset_ttl),
            frontend_reset_url=reader.str("FRONTEND_RESET_URL", ""),
            password_hash_profile=reader.choice(
                "PASSWORD_HASH_PROFILE", defaults.password_hash_profile, PASSWORD_HASH_PROFILES
            ),
            ai_provider=reader.choice("AI_PROVIDER", defaults.ai_provider, PROVIDERS),
            openai_api_key=reader.str("OPENAI_API_KEY", ""),
            openai_base_url=reader.str("OPENAI_BASE_URL", ""),
            openai_timeout=reader.float("OPENAI_TIMEOUT", defaults.openai_timeout),
            openai_connect_timeout=reader.float("OPENAI_CONNECT_TIMEOUT", defaults.openai_connect_timeout),
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
            s3_public_endpoint_url=reader.str("S3_PUBLIC_ENDPOINT_URL", "").rstrip("/"),
            output_inline_max_bytes=reader.int("OUTPUT_INLINE_MAX_BYTES", defaults.output_inline_max_bytes),
            download_url_ttl=reader.int("DOWNLOAD_URL_TTL", defaults.download_url_ttl),
            mail_url=reader.str("MAIL_URL", defaults.mail_url),
            mail_from=reader.str("MAIL_FROM", defaults.mail_from),
            public_base_url=reader.str("PUBLIC_BASE_URL", defaults.public_base_url).rstrip("/"),
            stripe_secret_key=reader.str("STRIPE_SECRET_KEY", ""),
            stripe_webhook_secret=reader.str("STRIPE_WEBHOOK_SECRET", ""),
            stripe_api_base=reader.str("STRIPE_API_BASE", defaults.stripe_api_base).rstrip("/"),
            stripe_ca_bundle=reader.str("STRIPE_CA_BUNDLE", ""),
            stripe_price_pro=reader.str("STRIPE_PRICE_PRO", ""),
            stripe_price_business=reader.str("STRIPE_PRICE_BUSINESS", ""),
            billing_portal_url=reader.str("BILLING_PORTAL_URL", ""),
            max_request_bytes=reader.int("MAX_REQUEST_BYTES", defaults.max_request_bytes),
            job_start_deadline=reader.int("JOB_START_DEADLINE", defaults.job_start_deadline),
            job_soft_time_limit=reader.int("JOB_SOFT_TIME_LIMIT", defaults.job_soft_time_limit),
            job_hard_time_limit=reader.int("JOB_HARD_TIME_LIMIT", defaults.job_hard_time_limit),
            job_lease_seconds=reader.int("JOB_LEASE_SECONDS", defaults.job_lease_seconds),
            job_max_attempts=reader.int("JOB_MAX_ATTEMPTS", defaults.job_max_attempts),
            broker_visibility_timeout=reader.int("BROKER_VISIBILITY_TIMEOUT", 0),
            broker_restore_interval=reader.int("BROKER_RESTORE_INTERVAL", defaults.broker_restore_interval),
            sse_heartbeat_seconds=reader.float("SSE_HEARTBEAT_SECONDS", defaults.sse_heartbeat_seconds),
            stream_token_ttl=reader.int("STREAM_TOKEN_TTL", defaults.stream_token_ttl),
            stream_token_grace=reader.int("STREAM_TOKEN_GRACE", defaults.stream_token_grace),
            maintenance_interval=reader.float("MAINTENANCE_INTERVAL", defaults.maintenance_interval),
            requeue_stale_after=reader.int("REQUEUE_STALE_AFTER", defaults.requeue_stale_after),
            webhook_allowed_hosts=reader.list("WEBHOOK_ALLOWED_HOSTS"),
            webhook_timeout=reader.float("WEBHOOK_TIMEOUT", defaults.webhook_timeout),
            webhook_max_age=reader.int("WEBHOOK_MAX_AGE", defaults.webhook_max_age),
            cleanup_interval=reader.float("CLEANUP_INTERVAL", defaults.cleanup_interval),
            unverified_account_days=reader.int("UNVERIFIED_ACCOUNT_DAYS", defaults.unverified_account_days),
            refresh_token_retention_days=reader.int(
                "REFRESH_TOKEN_RETENTION_DAYS", defaults.refresh_token_retention_days
            ),
            daily_report_hour=reader.int("DAILY_REPORT_HOUR", defaults.daily_report_hour),
            log_level=reader.str("LOG_LEVEL", defaults.log_level).upper(),
            log_format=reader.choice("LOG_FORMAT", "json" if production else "text", LOG_FORMATS),
            cors_origins=reader.list("CORS_ORIGINS") or (() if production else DEV_CORS_ORIGINS),
            metrics_port=reader.int("METRICS_PORT", 0),
            worker_heartbeat_interval=reader.float(
                "WORKER_HEARTBEAT_INTERVAL", defaults.worker_heartbeat_interval
            ),
            flower_basic_auth=reader.str("FLOWER_BASIC_AUTH", ""),
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
        for name, value in (
            ("LOGIN_RATE_LIMIT_PER_ACCOUNT", self.login_rate_limit_per_account),
            ("LOGIN_RATE_LIMIT_PER_IP", self.login_rate_limit_per_ip),
            ("FORGOT_PASSWORD_RATE_LIMIT", self.forgot_password_rate_limit),
        ):
            if not _is_rate_limit(value):
                problems.append(f"{name} must be a rate limit such as 5/minute or 100/hour;1000/day")
        if self.email_verification_ttl < 60 or self.password_reset_ttl < 60:
            problems.append("EMAIL_VERIFICATION_TTL and PASSWORD_RESET_TTL must be at least 60 (seconds)")
        if self.provider_max_attempts < 1:
            problems.append("PROVIDER_MAX_ATTEMPTS must be at least 1")
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):
                problems.append(
                    f"CORS_ORIGINS entry {origin!r} must be an origin such as https://app.example.com "
                    "(scheme and host, optional port, no path or trailing slash)"
                )
        if self.db_pool_size < 1 or self.db_max_overflow < 0:
            problems.append("DB_POOL_SIZE must be at least 1 and DB_MAX_OVERFLOW not negative")
        if self.worker_heartbeat_interval <= 0:
            problems.append("WORKER_HEARTBEAT_INTERVAL must be greater than 0")
        if self.webhook_timeout <= 0:
            problems.append("WEBHOOK_TIMEOUT must be greater than 0")
        if self.openai_timeout <= 0 or self.openai_connect_timeout <= 0:
            problems.append("OPENAI_TIMEOUT and OPENAI_CONNECT_TIMEOUT must be greater than 0 (seconds)")
        if self.provider_rate_limit_window < 1:
            problems.append("PROVIDER_RATE_LIMIT_WINDOW must be at least 1 (second)")
        if self.provider_rate_limit_max_wait < 0:
            problems.append("PROVIDER_RATE_LIMIT_MAX_WAIT must not be negative")
        if not 1 <= self.download_url_ttl <= 900:
            problems.append("DOWNLOAD_URL_TTL must be from 1 to 900 seconds (download links expire quickly)")
        if not 60 <= self.stream_token_grace <= self.stream_token_ttl:
            problems.append(
                "STREAM_TOKEN_GRACE must be at least 60 seconds and at most STREAM_TOKEN_TTL "
                f"({self.stream_token_ttl}): a stream URL must outlive the job's end long enough "
                "to be opened, and never outlive its bound"
            )
        if self.output_inline_max_bytes < 0:
            problems.append("OUTPUT_INLINE_MAX_BYTES must not be negative")
        if self.refresh_token_retention_days < 0:
            problems.append("REFRESH_TOKEN_RETENTION_DAYS must not be negative")
        if not 0 <= self.daily_report_hour <= 23:
            problems.append("DAILY_REPORT_HOUR must be an hour from 0 to 23 (UTC)")
        if self.storage_url.split("://", 1)[0].lower() not in ("file", "s3") or "://" not in self.storage_url:
            problems.append("STORAGE_URL must be file:///absolute/path or s3://bucket[/prefix]")
        if self.s3_public_endpoint_url and not _BASE_URL.fullmatch(self.s3_public_endpoint_url):
            # A path would be signed into every link, and a proxy that strips it breaks them all.
            problems.append(
                "S3_PUBLIC_ENDPOINT_URL must be where clients reach the store, such as http://localhost:9000"
                f" (scheme and host, optional port, no path); got {self.s3_public_endpoint_url!r}"
            )
        if self.mail_url.split("://", 1)[0].lower() not in ("console", "smtp", "smtps"):
            problems.append("MAIL_URL must be console://, smtp://[user:pass@]host:port or smtps://…")
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            problems.append(
                "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: without Stripe's events "
                "no subscription would ever change a plan (set it from the webhook endpoint's signing secret)"
            )
        if self.stripe_ca_bundle and (problem := _ca_bundle_problem(self.stripe_ca_bundle)):
            problems.append(f"STRIPE_CA_BUNDLE must name a PEM file of CA certificates: {problem}")
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
            if self.password_hash_profile != PASSWORD_HASH_PROFILES[0]:
                problems.append(
                    "PASSWORD_HASH_PROFILE=cheapest is for test suites; production stores passwords "
                    "with rfc9106-low-memory (unset it)"
                )
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


def _ca_bundle_problem(path: str) -> str | None:
    """Why `path` cannot serve as a CA bundle, or None: loaded as a TLS client would load it."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except OSError as error:  # missing, unreadable, or (ssl.SSLError) no certificate in it
        return f"{path!r} cannot be used ({error.strerror or error})"
    return None


def _is_rate_limit(text: str) -> bool:
    from limits import parse_many

    try:
        return bool(parse_many(text))
    except ValueError:
        return False


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
