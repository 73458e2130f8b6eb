"""Every Conveyor setting, declared once: its environment variable, default, parser,
check and what it is for. settings.Settings gathers these groups into one object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from settings_fields import (
    BASE_URL,
    RateLimit,
    at_least,
    base_url,
    ca_bundle,
    ensure,
    flag,
    names,
    not_negative,
    number,
    one_of,
    origins,
    positive,
    rate_limit,
    rate_limits,
    setting,
    sqlalchemy_url,
    upper,
    url_scheme,
    whole,
)

DEV_SECRET = "dev-only-insecure-secret-change-me"  # noqa: S105 - refused in production
ENVIRONMENTS = ("development", "test", "production")
# What production refuses unless ALLOW_IN_PRODUCTION names it (settings._production_safety).
PRODUCTION_EXCEPTIONS = ("console-mail", "file-storage", "offline-provider", "http-base-url")
PROVIDERS = ("offline", "openai")
# argon2id parameters for stored passwords (api/services/passwords.py): RFC 9106's
# low-memory choice, or the cheapest argon2id for test suites.
PASSWORD_HASH_PROFILES = ("rfc9106-low-memory", "cheapest")
LOG_FORMATS = ("json", "text")
DEV_CORS_ORIGINS = ("http://localhost:3000",)

# Messages shared by two settings checked together.
_POOL = "DB_POOL_SIZE must be at least 1 and DB_MAX_OVERFLOW not negative"
_LINK_TTLS = "EMAIL_VERIFICATION_TTL and PASSWORD_RESET_TTL must be at least 60 (seconds)"
_OPENAI_TIMEOUTS = "OPENAI_TIMEOUT and OPENAI_CONNECT_TIMEOUT must be greater than 0 (seconds)"
_OPEN_STREAMS = (
    "MAX_OPEN_STREAMS_PER_USER and MAX_OPEN_STREAMS_PER_API_KEY must be at least 1 "
    "(event streams and long-polls a user, or one API key, may have open at once)"
)


@dataclass(frozen=True)
class ServiceSettings:
    """Where the database, Redis and broker are, and the secrets that sign sessions."""

    env: str = setting(
        "CONVEYOR_ENV", "development", parse=one_of(ENVIRONMENTS), doc="production refuses unsafe settings"
    )
    database_url: str = setting(
        "DATABASE_URL",
        "postgresql+psycopg2://postgres@localhost:5432/conveyor",
        parse=sqlalchemy_url,
        doc="the Postgres database",
    )
    # A gevent web worker runs many requests at once: one that got more connections than it
    # kept opened (and Postgres forked) a connection on most requests, so all are kept.
    db_pool_size: int = setting(
        "DB_POOL_SIZE",
        15,
        parse=whole,
        check=ensure(lambda size: size >= 1, _POOL),
        doc="connections a process keeps",
    )
    db_max_overflow: int = setting(
        "DB_MAX_OVERFLOW",
        0,
        parse=whole,
        check=ensure(lambda extra: extra >= 0, _POOL),
        doc="connections beyond those, closed when returned",
    )
    # PgBouncer's transaction pooling hands each transaction any server connection: a
    # statement prepared on one is unknown on the next (docs/deployment.md).
    db_prepared_statements: bool = setting(
        "DB_PREPARED_STATEMENTS",
        True,
        parse=flag,
        doc="prepare the hot statements once a connection; false behind a transaction pooler",
    )
    db_connect_timeout: int = setting(
        "DB_CONNECT_TIMEOUT",
        5,
        parse=whole,
        check=at_least(2, " (seconds; libpq waits at least 2)"),
        doc="seconds to open a Postgres connection before the request or task fails",
    )
    db_statement_timeout: float = setting(
        "DB_STATEMENT_TIMEOUT",
        30.0,
        parse=number,
        check=not_negative(),
        doc="seconds a web process's statement may run; 0: the server's (or role's) own",
    )
    db_worker_statement_timeout: float = setting(
        "DB_WORKER_STATEMENT_TIMEOUT",
        300.0,
        parse=number,
        check=not_negative(),
        doc="seconds a worker's, beat's or script's statement may run; 0: the server's own",
    )
    redis_url: str = setting(
        "REDIS_URL", "redis://localhost:6379/0", doc="Redis for limits, locks and events"
    )
    broker_url: str = setting(
        "CELERY_BROKER_URL", "", doc="the Celery broker; empty: the same Redis as redis_url"
    )
    secret_key: str = setting("SECRET_KEY", DEV_SECRET, doc="Flask's secret; required in production")
    jwt_secret_key: str = setting(
        "JWT_SECRET_KEY", DEV_SECRET, doc="signs access tokens; required in production"
    )
    access_token_ttl: int = setting(
        "ACCESS_TOKEN_TTL", 15 * 60, parse=whole, doc="seconds an access token works"
    )
    refresh_token_ttl: int = setting(
        "REFRESH_TOKEN_TTL", 30 * 24 * 3600, parse=whole, doc="seconds a refresh token works"
    )


@dataclass(frozen=True)
class AccountSettings:
    """Sign-up, login and password reset: attempt limits, link lifetimes, password hashing."""

    # flask-limiter strings ("5/minute", "100/hour;1000/day"), counted in Redis across processes.
    login_rate_limit_per_account: str = setting(
        "LOGIN_RATE_LIMIT_PER_ACCOUNT", "5/minute", check=rate_limit(), doc="login attempts per email address"
    )
    login_rate_limit_per_ip: str = setting(
        "LOGIN_RATE_LIMIT_PER_IP", "20/minute", check=rate_limit(), doc="login attempts per client address"
    )
    forgot_password_rate_limit: str = setting(
        "FORGOT_PASSWORD_RATE_LIMIT", "3/hour", check=rate_limit(), doc="reset emails per email address"
    )
    register_rate_limit_per_ip: str = setting(
        "REGISTER_RATE_LIMIT_PER_IP", "5/hour", check=rate_limit(), doc="registrations per client address"
    )
    register_rate_limit_per_network: str = setting(
        "REGISTER_RATE_LIMIT_PER_NETWORK",
        "20/hour",
        check=rate_limit(),
        doc="registrations per IPv4 /24 or IPv6 /48",
    )
    account_export_rate_limit: str = setting(
        "ACCOUNT_EXPORT_RATE_LIMIT", "3/day", check=rate_limit(), doc="account exports per user"
    )
    email_verification_ttl: int = setting(
        "EMAIL_VERIFICATION_TTL",
        3 * 24 * 3600,
        parse=whole,
        check=ensure(lambda ttl: ttl >= 60, _LINK_TTLS),
        doc="seconds a verification link works",
    )
    password_reset_ttl: int = setting(
        "PASSWORD_RESET_TTL",
        3600,
        parse=whole,
        check=ensure(lambda ttl: ttl >= 60, _LINK_TTLS),
        doc="seconds a password reset link works",
    )
    frontend_reset_url: str = setting(
        "FRONTEND_RESET_URL", "", doc="token appended; empty: {public_base_url}/reset-password?token="
    )
    password_hash_profile: str = setting(
        "PASSWORD_HASH_PROFILE",
        PASSWORD_HASH_PROFILES[0],
        parse=one_of(PASSWORD_HASH_PROFILES),
        doc="argon2id parameters for stored passwords; `cheapest` is refused in production",
    )


@dataclass(frozen=True)
class ProviderSettings:
    """The AI provider: which, how long a call may take, retries and local rate limits."""

    ai_provider: str = setting("AI_PROVIDER", "offline", parse=one_of(PROVIDERS), doc="who runs the AI calls")
    openai_api_key: str = setting("OPENAI_API_KEY", "", doc="required with AI_PROVIDER=openai")
    openai_base_url: str = setting("OPENAI_BASE_URL", "", doc="empty: the SDK's default (api.openai.com)")
    openai_timeout: float = setting(
        "OPENAI_TIMEOUT",
        60.0,
        parse=number,
        check=ensure(lambda seconds: seconds > 0, _OPENAI_TIMEOUTS),
        doc="seconds a call may wait for each read or write",
    )
    openai_connect_timeout: float = setting(
        "OPENAI_CONNECT_TIMEOUT",
        10.0,
        parse=number,
        check=ensure(lambda seconds: seconds > 0, _OPENAI_TIMEOUTS),
        doc="seconds to make a connection (at most openai_timeout)",
    )
    default_model: str = setting("DEFAULT_MODEL", "gpt-4o-mini", doc="the model of a job that names none")
    provider_max_attempts: int = setting(
        "PROVIDER_MAX_ATTEMPTS", 4, parse=whole, check=at_least(1), doc="tries per provider call"
    )
    provider_backoff_base: float = setting(
        "PROVIDER_BACKOFF_BASE", 1.0, parse=number, doc="seconds before the first retry, doubled each time"
    )
    provider_backoff_max: float = setting(
        "PROVIDER_BACKOFF_MAX", 30.0, parse=number, doc="the longest wait between retries"
    )
    provider_rate_limits: tuple[RateLimit, ...] = setting(
        "PROVIDER_RATE_LIMITS", (), parse=rate_limits, doc="rpm/tpm per model; empty: no local rate limit"
    )
    provider_rate_limit_max_wait: float = setting(
        "PROVIDER_RATE_LIMIT_MAX_WAIT",
        60.0,
        parse=number,
        check=not_negative(),
        doc="seconds a call may wait for room",
    )
    provider_rate_limit_window: int = setting(
        "PROVIDER_RATE_LIMIT_WINDOW",
        60,
        parse=whole,
        check=at_least(1, " (second)"),
        doc="seconds rpm/tpm count over",
    )
    model_catalogue_file: str = setting(
        "MODEL_CATALOGUE_FILE",
        str(Path(__file__).with_name("workers") / "model_catalogue.json"),
        doc="the models offered: provider, prices per lane, plans, fallbacks (docs/spending.md)",
    )
    breaker_failures: int = setting(
        "BREAKER_FAILURES",
        5,
        parse=whole,
        check=at_least(1),
        doc="failed calls to one model within breaker_window that make jobs skip it",
    )
    breaker_window: int = setting(
        "BREAKER_WINDOW",
        60,
        parse=whole,
        check=at_least(1, " (second)"),
        doc="seconds those failures count over",
    )
    breaker_cooldown: int = setting(
        "BREAKER_COOLDOWN",
        30,
        parse=whole,
        check=at_least(1, " (second)"),
        doc="seconds a failing model is skipped before one job tries it again",
    )
    flex_timeout: float = setting(
        "FLEX_TIMEOUT",
        900.0,
        parse=number,
        check=positive(),
        doc="seconds a flex call may wait for each read (OpenAI asks for 15 minutes)",
    )
    flex_max_wait: float = setting(
        "FLEX_MAX_WAIT",
        300.0,
        parse=number,
        check=not_negative(),
        doc="seconds a flex job waits out `resource unavailable` before running on the standard tier",
    )


@dataclass(frozen=True)
class StorageMailBillingSettings:
    """Where outputs are stored, how email leaves, and Stripe billing."""

    storage_url: str = setting(
        "STORAGE_URL",
        factory=lambda: f"file://{Path.cwd() / 'var' / 'storage'}",
        check=url_scheme(("file", "s3"), "{name} must be file:///absolute/path or s3://bucket[/prefix]"),
        doc="where large outputs and exports are stored",
    )
    s3_endpoint_url: str = setting(
        "S3_ENDPOINT_URL", "", doc="MinIO or another S3-compatible store; empty: AWS"
    )
    # A path would be signed into every link, and a proxy that strips it breaks them all.
    s3_public_endpoint_url: str = setting(
        "S3_PUBLIC_ENDPOINT_URL",
        "",
        parse=base_url,
        check=ensure(
            lambda url: not url or BASE_URL.fullmatch(url),
            "{name} must be where clients reach the store, such as http://localhost:9000"
            " (scheme and host, optional port, no path); got {value!r}",
        ),
        doc="where clients reach the store if not at s3_endpoint_url; presigned links are made for it",
    )
    output_inline_max_bytes: int = setting(
        "OUTPUT_INLINE_MAX_BYTES",
        64 * 1024,
        parse=whole,
        check=not_negative(),
        doc="larger JSON outputs go to storage",
    )
    download_url_ttl: int = setting(
        "DOWNLOAD_URL_TTL",
        900,
        parse=whole,
        check=ensure(
            lambda ttl: 1 <= ttl <= 900,
            "{name} must be from 1 to 900 seconds (download links expire quickly)",
        ),
        doc="seconds a download URL works",
    )
    mail_url: str = setting(
        "MAIL_URL",
        "console://",
        check=ensure(
            lambda url: url.split("://", 1)[0].lower() in ("console", "smtp", "smtps"),
            "{name} must be console://, smtp://[user:pass@]host:port or smtps://…",
        ),
        doc="how emails leave: the log, or an SMTP server",
    )
    mail_from: str = setting("MAIL_FROM", "Conveyor <no-reply@localhost>", doc="the sender of every email")
    public_base_url: str = setting(
        "PUBLIC_BASE_URL", "http://localhost:8000", parse=base_url, doc="links in emails point here"
    )
    stripe_secret_key: str = setting("STRIPE_SECRET_KEY", "", doc="billing is on only with one")
    stripe_webhook_secret: str = setting("STRIPE_WEBHOOK_SECRET", "", doc="signs Stripe's events to us")
    stripe_api_base: str = setting(
        "STRIPE_API_BASE", "https://api.stripe.com", parse=base_url, doc="a local stand-in in tests"
    )
    # The SDK ignores SSL_CERT_FILE and REQUESTS_CA_BUNDLE.
    stripe_ca_bundle: str = setting(
        "STRIPE_CA_BUNDLE",
        "",
        check=ca_bundle,
        doc="a PEM file of the CAs the Stripe SDK trusts instead of its own (a TLS-inspecting proxy)",
    )
    stripe_price_pro: str = setting(
        "STRIPE_PRICE_PRO", "", doc="a Stripe price id the checkout sells; empty: the plan is not for sale"
    )
    stripe_price_business: str = setting("STRIPE_PRICE_BUSINESS", "", doc="as stripe_price_pro")
    billing_portal_url: str = setting(
        "BILLING_PORTAL_URL", "", doc="linked from payment-failed emails; empty: the invoice's payment page"
    )


@dataclass(frozen=True)
class JobSettings:
    """Jobs, their time limits and leases, event streams and webhooks."""

    max_request_bytes: int = setting(
        "MAX_REQUEST_BYTES", 256 * 1024, parse=whole, doc="the largest request body"
    )
    job_start_deadline: int = setting(
        "JOB_START_DEADLINE", 3600, parse=whole, doc="a job not started by then ends `expired`"
    )
    job_soft_time_limit: int = setting(
        "JOB_SOFT_TIME_LIMIT", 300, parse=whole, doc="ends the job `failed` with code `timeout`"
    )
    job_hard_time_limit: int = setting("JOB_HARD_TIME_LIMIT", 330, parse=whole, doc="kills the task")
    job_lease_seconds: int = setting(
        "JOB_LEASE_SECONDS", 60, parse=whole, check=at_least(3), doc="a lapsed lease means the worker died"
    )
    job_max_attempts: int = setting(
        "JOB_MAX_ATTEMPTS", 3, parse=whole, doc="deliveries lost to dying workers before `worker_lost`"
    )
    broker_visibility_timeout: int = setting(
        "BROKER_VISIBILITY_TIMEOUT", 0, parse=whole, doc="0: job_hard_time_limit + 300"
    )
    broker_restore_interval: int = setting(
        "BROKER_RESTORE_INTERVAL", 10, parse=whole, doc="seconds between sweeps for dead workers' messages"
    )
    # The variable keeps its first name: deployments set it.
    sse_keepalive_seconds: float = setting(
        "SSE_HEARTBEAT_SECONDS", 15.0, parse=number, doc="seconds between keep-alives on an idle stream"
    )
    # How often a running job's streamed text goes out (workers/job_stream.py's DeltaBatcher).
    stream_delta_interval: float = setting(
        "STREAM_DELTA_INTERVAL",
        0.05,
        parse=number,
        check=not_negative(),
        doc="seconds of streamed text sent as one `delta` event (the first piece at once); 0: each piece",
    )
    # A job's urls.stream (api/services/stream_tokens.py).
    stream_token_ttl: int = setting(
        "STREAM_TOKEN_TTL", 24 * 3600, parse=whole, doc="seconds a stream URL works after it was handed out"
    )
    stream_token_grace: int = setting(
        "STREAM_TOKEN_GRACE", 600, parse=whole, doc="seconds a stream URL works after the job ended"
    )
    # Counted across every web process and host.
    max_open_streams_per_user: int = setting(
        "MAX_OPEN_STREAMS_PER_USER",
        20,
        parse=whole,
        check=ensure(lambda count: count >= 1, _OPEN_STREAMS),
        doc="event streams and long-polls one user may have open at once",
    )
    max_open_streams_per_api_key: int = setting(
        "MAX_OPEN_STREAMS_PER_API_KEY",
        10,
        parse=whole,
        check=ensure(lambda count: count >= 1, _OPEN_STREAMS),
        doc="event streams and long-polls one API key may have open at once",
    )
    # The beat's job recovery (tasks/job_recovery.py); the name is the variable's.
    maintenance_interval: float = setting(
        "MAINTENANCE_INTERVAL", 15.0, parse=number, doc="seconds between the beat's re-send and reaper runs"
    )
    requeue_stale_after: int = setting(
        "REQUEUE_STALE_AFTER", 900, parse=whole, doc="a queued job whose message may be lost is re-sent"
    )
    # Admin bulk actions (workers/bulk_operations.py).
    bulk_admin_inline_max: int = setting(
        "BULK_ADMIN_INLINE_MAX",
        100,
        parse=whole,
        doc="up to this many matches run in the request; more in a task",
    )
    bulk_admin_lease_seconds: int = setting(
        "BULK_ADMIN_LEASE_SECONDS",
        60,
        parse=whole,
        check=at_least(2),
        doc="a bulk task that records no progress this long is presumed dead and resumed",
    )
    webhook_allowed_hosts: tuple[str, ...] = setting(
        "WEBHOOK_ALLOWED_HOSTS", (), parse=names, doc="exempt from the private-address check (tests, LANs)"
    )
    webhook_timeout: float = setting(
        "WEBHOOK_TIMEOUT", 10.0, parse=number, check=positive(), doc="seconds per delivery attempt"
    )
    webhook_max_age: int = setting(
        "WEBHOOK_MAX_AGE", 86400, parse=whole, doc="seconds a webhook is retried after its first"
    )
    # The response cache (workers/response_cache.py); a tool declares its own ttl.
    response_cache: str = setting(
        "RESPONSE_CACHE",
        "on",
        parse=one_of(("on", "off")),
        doc="on: serve and store the answers of tools that declare a cache ttl; off: never",
    )
    response_cache_max_entries: int = setting(
        "RESPONSE_CACHE_MAX_ENTRIES",
        100_000,
        parse=whole,
        check=at_least(1),
        doc="the cleanup removes the oldest entries beyond this many",
    )
    # The batch lane (workers/batch_lane/): jobs with a deadline go through the provider's Batch API.
    batch_lane_min_deadline: int = setting(
        "BATCH_LANE_MIN_DEADLINE",
        3600,
        parse=whole,
        check=at_least(1),
        doc="seconds ahead a job's `deadline` must be at least (nearer: 422)",
    )
    batch_lane_takeout: int = setting(
        "BATCH_LANE_TAKEOUT",
        1800,
        parse=whole,
        check=at_least(0),
        doc="seconds before its deadline a job whose batch has not answered runs on the normal lane",
    )
    batch_lane_interval: float = setting(
        "BATCH_LANE_INTERVAL",
        60.0,
        parse=number,
        check=positive(),
        doc="seconds between the beat's gathering of held jobs into batches and its follow-up",
    )
    batch_lane_max_jobs: int = setting(
        "BATCH_LANE_MAX_JOBS", 5000, parse=whole, check=at_least(1), doc="the most jobs in one batch file"
    )


@dataclass(frozen=True)
class OperationsSettings:
    """Beat clean-ups, logs, CORS, metrics and Flower."""

    cleanup_interval: float = setting(
        "CLEANUP_INTERVAL", 3600.0, parse=number, doc="seconds between the beat's clean-ups"
    )
    unverified_account_days: int = setting(
        "UNVERIFIED_ACCOUNT_DAYS", 7, parse=whole, doc="unverified accounts live this many days"
    )
    refresh_token_retention_days: int = setting(
        "REFRESH_TOKEN_RETENTION_DAYS",
        7,
        parse=whole,
        check=not_negative(),
        doc="days expired refresh tokens are kept",
    )
    daily_report_hour: int = setting(
        "DAILY_REPORT_HOUR",
        6,
        parse=whole,
        check=ensure(lambda hour: 0 <= hour <= 23, "{name} must be an hour from 0 to 23 (UTC)"),
        doc="UTC hour the beat emails the admins yesterday's report",
    )
    log_level: str = setting("LOG_LEVEL", "INFO", parse=upper, doc="the logging level")
    log_format: str = setting(
        "LOG_FORMAT",
        "text",
        parse=one_of(LOG_FORMATS),
        default_for=lambda production: "json" if production else "text",
        doc="json | text; json by default in production",
    )
    cors_origins: tuple[str, ...] = setting(
        "CORS_ORIGINS",
        (),
        parse=names,
        check=origins,
        default_for=lambda production: () if production else DEV_CORS_ORIGINS,
        doc="browser origins that may call the API",
    )
    metrics_port: int = setting("METRICS_PORT", 0, parse=whole, doc="a worker serves /metrics here; 0: none")
    worker_heartbeat_interval: float = setting(
        "WORKER_HEARTBEAT_INTERVAL",
        5.0,
        parse=number,
        check=positive(),
        doc="seconds between worker heartbeats",
    )
    flower_basic_auth: str = setting("FLOWER_BASIC_AUTH", "", doc="user:password[,…] for Flower")
    allow_in_production: tuple[str, ...] = setting(
        "ALLOW_IN_PRODUCTION",
        (),
        parse=names,
        check=ensure(
            lambda allowed: set(allowed) <= set(PRODUCTION_EXCEPTIONS),
            "{name} may name only " + ", ".join(PRODUCTION_EXCEPTIONS) + "; got {value!r}",
        ),
        doc="development choices production accepts anyway (a one-host trial)",
    )
    # Behind a load balancer every request comes from its address: per-IP limits would
    # count all clients as one unless X-Forwarded-For is believed, and only this many hops.
    trusted_proxy_hops: int = setting(
        "TRUSTED_PROXY_HOPS",
        0,
        parse=whole,
        check=not_negative(),
        doc="proxies in front of the web whose X-Forwarded-* headers are believed",
    )


@dataclass(frozen=True)
class ProcessSettings:
    """How workers and beat live and end: recycling, shutdown, the beat's leader lock."""

    worker_max_memory_per_child: int = setting(
        "WORKER_MAX_MEMORY_PER_CHILD",
        512 * 1024,
        parse=whole,
        check=not_negative(),
        doc="KiB a worker's pool process may hold before it is replaced after its task; 0: never",
    )
    worker_soft_shutdown_timeout: float = setting(
        "WORKER_SOFT_SHUTDOWN_TIMEOUT",
        30.0,
        parse=number,
        check=not_negative(),
        doc="seconds running tasks get on a cold shutdown (SIGQUIT) before they go back to the queue",
    )
    beat_lock_ttl: int = setting(
        "BEAT_LOCK_TTL",
        30,
        parse=whole,
        check=at_least(3, " (seconds)"),
        doc="seconds a stopped beat keeps the lead; a standby beat takes over after that",
    )
