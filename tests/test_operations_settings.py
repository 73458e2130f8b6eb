"""Settings of the operations features: log format, CORS origins, Flower's password."""

import re

import pytest

from settings import ConfigError, Settings
from tests.helpers import PRODUCTION_ENV as STRONG


def test_logs_are_json_in_production_and_text_elsewhere_unless_chosen():
    assert Settings.from_env(STRONG).log_format == "json"
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of json, text"):
        Settings.from_env({"LOG_FORMAT": "xml"})


def test_cors_origins_default_by_environment_and_must_be_origins():
    assert Settings.from_env(STRONG).cors_origins == ()
    assert Settings.from_env({}).cors_origins == ("http://localhost:3000",)
    chosen = Settings.from_env({**STRONG, "CORS_ORIGINS": "https://app.example.com, http://localhost:5173"})
    assert chosen.cors_origins == ("https://app.example.com", "http://localhost:5173")
    with pytest.raises(
        ConfigError, match=re.escape("CORS_ORIGINS entry 'https://app.example.com/' must be an origin")
    ):
        Settings.from_env({"CORS_ORIGINS": "https://app.example.com/"})


def test_flower_defaults_to_admin_admin_only_in_development():
    assert Settings.from_env({}).flower_users() == ["admin:admin"]
    assert Settings.from_env({"FLOWER_BASIC_AUTH": "ops:pw, dev:pw2"}).flower_users() == ["ops:pw", "dev:pw2"]
    with pytest.raises(ConfigError, match=r"FLOWER_BASIC_AUTH must be set .* when CONVEYOR_ENV=test"):
        Settings.from_env({"CONVEYOR_ENV": "test"}).flower_users()
    with pytest.raises(ConfigError, match="when CONVEYOR_ENV=production"):
        Settings.from_env(STRONG).flower_users()


@pytest.mark.parametrize("auth", ["admin:change-me", "ops:short", "ops:", "no-colon"])
def test_production_refuses_weak_or_malformed_flower_passwords(auth):
    with pytest.raises(ConfigError, match="FLOWER_BASIC_AUTH"):
        Settings.from_env({**STRONG, "FLOWER_BASIC_AUTH": auth}).flower_users()


def test_a_missing_flower_password_does_not_stop_the_web_or_workers():
    settings = Settings.from_env(STRONG)  # no FLOWER_BASIC_AUTH: only Flower itself refuses
    assert settings.is_production
    assert Settings.from_env({**STRONG, "FLOWER_BASIC_AUTH": "ops:a-long-password"}).flower_users() == [
        "ops:a-long-password"
    ]
