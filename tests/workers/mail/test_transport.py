"""The mail settings: MAIL_URL chooses the transport, and the rest come from the environment."""

import pytest

from settings import ConfigError, Settings
from workers.mail import transport


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("console://", transport.ConsoleTransport),
        ("smtp://mailpit:1025", transport.SmtpTransport(host="mailpit", port=1025)),
        ("smtp://localhost", transport.SmtpTransport(host="localhost", port=25)),
        (
            "smtp://user%40x.com:p%40ss@smtp.example.com:587?starttls=1",
            transport.SmtpTransport(
                host="smtp.example.com", port=587, username="user@x.com", password="p@ss", starttls=True
            ),
        ),
        (
            "smtps://u:p@smtp.example.com",
            transport.SmtpTransport(
                host="smtp.example.com", port=465, username="u", password="p", use_ssl=True
            ),
        ),
    ],
)
def test_mail_url_chooses_the_transport(url, expected):
    chosen = transport.from_url(url)
    if isinstance(expected, type):
        assert isinstance(chosen, expected)
    else:
        assert chosen == expected


def test_mail_settings_come_from_the_environment():
    settings = Settings.from_env(
        {
            "MAIL_URL": "smtp://mailpit:1025",
            "MAIL_FROM": "Ops <ops@example.com>",
            "PUBLIC_BASE_URL": "https://x.io/",
        }
    )
    assert (settings.mail_url, settings.mail_from, settings.public_base_url) == (
        "smtp://mailpit:1025",
        "Ops <ops@example.com>",
        "https://x.io",
    )
    defaults = Settings.from_env({})
    assert (defaults.mail_url, defaults.mail_from, defaults.public_base_url) == (
        "console://",
        "Conveyor <no-reply@localhost>",
        "http://localhost:8000",
    )
    with pytest.raises(ConfigError, match="MAIL_URL must be console://"):
        Settings.from_env({"MAIL_URL": "sendmail://localhost"})
