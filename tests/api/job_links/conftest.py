"""An app on PUBLIC_BASE_URL (behind a proxy, under a path) that lets ORIGIN in, a clock
for its stream tokens, and a signed-up user."""

from __future__ import annotations

import dataclasses

import pytest

from api import create_app
from tests.api.job_links.links import BASE, NOW, ORIGIN
from tests.helpers import register
from workers import job_links


@pytest.fixture
def app(settings):
    app = create_app(dataclasses.replace(settings, public_base_url=BASE, cors_origins=(ORIGIN,)))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def clock(monkeypatch):
    """The stream tokens' clock, set by the test (no sleeping to reach an expiry)."""
    now = [NOW]
    monkeypatch.setattr(job_links, "clock", lambda: now[0])
    return now


@pytest.fixture
def signup(client):
    headers, body = register(client)
    return headers, body


@pytest.fixture
def headers(signup):
    return signup[0]
