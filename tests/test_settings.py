import pytest

from settings import DEV_SECRET, ConfigError, Settings
from tests.helpers import PRODUCTION_ENV

STRONG = {**PRODUCTION_ENV, "DATABASE_URL": "postgres://db/conveyor"}


def test_defaults_run_locally_with_no_configuration():
    settings = Settings.from_env({})
    assert settings.ai_provider == "offline" and settings.mail_url == "console://"
    assert settings.storage_url.startswith("file://")
    assert settings.database_url.startswith("postgresql+psycopg2://")
    assert settings.refresh_token_retention_days == 7
    assert Settings.from_env({"REFRESH_TOKEN_RETENTION_DAYS": "30"}).refresh_token_retention_days == 30
    assert settings.password_hash_profile == "rfc9106-low-memory"


def test_production_refuses_default_or_missing_secrets():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"CONVEYOR_ENV": "production"})
    assert "SECRET_KEY must be set" in str(error.value) and "JWT_SECRET_KEY must be set" in str(error.value)


def test_production_refuses_short_or_shared_secrets():
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env({**STRONG, "CONVEYOR_ENV": "production", "SECRET_KEY": "short"})
    with pytest.raises(ConfigError, match="must differ"):
        Settings.from_env({**STRONG, "CONVEYOR_ENV": "production", "JWT_SECRET_KEY": STRONG["SECRET_KEY"]})


def test_production_starts_with_strong_secrets():
    settings = Settings.from_env({**STRONG, "CONVEYOR_ENV": "production"})
    assert settings.is_production and settings.secret_key != DEV_SECRET
    assert settings.database_url == "postgresql+psycopg2://db/conveyor"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AI_PROVIDER": "magic"}, "AI_PROVIDER must be one of offline, openai"),
        ({"AI_PROVIDER": "openai"}, "needs OPENAI_API_KEY"),
        ({"JOB_SOFT_TIME_LIMIT": "abc"}, "JOB_SOFT_TIME_LIMIT must be a whole number"),
        ({"JOB_SOFT_TIME_LIMIT": "400", "JOB_HARD_TIME_LIMIT": "300"}, "greater than JOB_SOFT_TIME_LIMIT"),
        ({"REFRESH_TOKEN_RETENTION_DAYS": "-1"}, "REFRESH_TOKEN_RETENTION_DAYS must not be negative"),
        ({"OPENAI_CONNECT_TIMEOUT": "0"}, "OPENAI_CONNECT_TIMEOUT must be greater than 0"),
        ({"OPENAI_TIMEOUT": "-1"}, "OPENAI_TIMEOUT and OPENAI_CONNECT_TIMEOUT must be greater than 0"),
        (
            {"PASSWORD_HASH_PROFILE": "md5"},
            "PASSWORD_HASH_PROFILE must be one of rfc9106-low-memory, cheapest",
        ),
        ({**STRONG, "CONVEYOR_ENV": "production", "PASSWORD_HASH_PROFILE": "cheapest"}, "is for test suites"),
    ],
)
def test_bad_values_stop_start_up_with_a_clear_message(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_stripe_ca_bundle_must_be_a_pem_file_of_certificates(tmp_path, local_ca):
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate")
    for path, reason in (
        (tmp_path / "missing.pem", "No such file"),
        (not_pem, "no certificate"),
        (tmp_path, "Is a directory"),
    ):
        with pytest.raises(ConfigError, match=f"STRIPE_CA_BUNDLE must name a PEM file .*{reason}"):
            Settings.from_env({"STRIPE_CA_BUNDLE": str(path)})
    settings = Settings.from_env({"STRIPE_CA_BUNDLE": str(local_ca.ca_file)})
    assert settings.stripe_ca_bundle == str(local_ca.ca_file)


@pytest.mark.parametrize(
    ("setup", "exception", "what_to_set"),
    [
        ({"MAIL_URL": "console://"}, "console-mail", "set MAIL_URL=smtp://"),
        ({"STORAGE_URL": "file:///srv/outputs"}, "file-storage", "set STORAGE_URL=s3://"),
        ({"AI_PROVIDER": "offline"}, "offline-provider", "set AI_PROVIDER=openai"),
        ({"PUBLIC_BASE_URL": "http://localhost:8000"}, "http-base-url", "set PUBLIC_BASE_URL=https://"),
    ],
)
def test_production_refuses_the_development_setup_unless_allowed(setup, exception, what_to_set):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**STRONG, **setup})
    assert what_to_set in str(refused.value)
    assert f"add {exception} to ALLOW_IN_PRODUCTION" in str(refused.value)
    allowed = Settings.from_env({**STRONG, **setup, "ALLOW_IN_PRODUCTION": f"{exception}, http-base-url"})
    assert allowed.is_production
    assert Settings.from_env({**STRONG, **setup, "CONVEYOR_ENV": "development"}).env == "development"


def test_production_with_nothing_set_names_every_development_choice():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(
            {k: v for k, v in STRONG.items() if k in ("CONVEYOR_ENV", "SECRET_KEY", "JWT_SECRET_KEY")}
        )
    for variable in ("MAIL_URL", "STORAGE_URL", "AI_PROVIDER", "PUBLIC_BASE_URL"):
        assert f"set {variable}=" in str(refused.value)


def test_allow_in_production_names_only_known_exceptions():
    with pytest.raises(ConfigError, match="ALLOW_IN_PRODUCTION may name only console-mail"):
        Settings.from_env({"ALLOW_IN_PRODUCTION": "everything"})
