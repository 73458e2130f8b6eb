"""A real SMTP server (aiosmtpd) for the module, and settings that send through it."""

import dataclasses

import pytest


@pytest.fixture
def mail_settings(settings, smtp):
    smtp.reset()
    return dataclasses.replace(
        settings,
        mail_url=smtp.url,
        mail_from="Conveyor <robot@mail.test>",
        public_base_url="http://mail.test",
    )
