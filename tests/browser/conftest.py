"""Headless Chromium against the real stack: the Procfile's gunicorn gevent web and Celery
workers, reached through a proxy a test can cut, and a plain page on another origin.

One stack and one browser serve the whole directory; each test gets a fresh browser
context (no shared storage) and, through the suite's autouse fixture, empty tables."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import launch_stack
from tests.fakes.services import TcpProxy, free_port, wait_until
from tests.helpers import call

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Headless, and quiet: without the networking flags Chromium calls home on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = Path(__file__).parent / "pages"


@dataclass
class Stack:
    api: str  # the web itself, for the test's own calls: http://127.0.0.1:PORT/api/v1
    public: str  # PUBLIC_BASE_URL, the proxy in front of the web: what the browser opens
    proxy: TcpProxy
    other_origin: str  # a plain page server on another port, allowed by CORS_ORIGINS
    log: Path  # the processes' output, access lines included

    def url(self, path: str) -> str:
        return self.public + path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test shows the end of the stack's log: what the web answered."""
    report = yield
    stack = item.funcargs.get("stack") if report.when == "call" and report.failed else None
    if isinstance(stack, Stack):
        lines = stack.log.read_text(errors="replace").splitlines()
        report.sections.append(("the stack's log, last lines", "\n".join(lines[-80:])))
    return report


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: the browser tests need it. Install it with "
            "`sudo apt-get install -y chromium` (make test does so when run as root), "
            "or point CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a job runs through a real worker; CI machines are slow
    with sync_playwright() as playwright:
        # Playwright's own launch gives Chromium a fresh, temporary user-data dir.
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def other_origin() -> Iterator[str]:
    """A static file server for tests/browser/pages on its own port: another origin."""
    handler = functools.partial(_QuietHandler, directory=str(PAGES))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="package")
def stack(tmp_path_factory, fake_openai, other_origin) -> Iterator[Stack]:
    """The Procfile's processes for the browser tests, stopped after the last of them: its
    workers consume this run's queues, which later tests count messages in."""
    web_port = free_port()
    proxy = TcpProxy(web_port)
    public = f"http://127.0.0.1:{proxy.port}"
    workdir = tmp_path_factory.mktemp("stack")
    log = workdir / f"stack-{web_port}.log"  # where launch_stack writes the processes' output
    api, stop = launch_stack(
        workdir,
        port=web_port,
        PUBLIC_BASE_URL=public,
        CORS_ORIGINS=other_origin,
        LOG_LEVEL="INFO",  # the access lines, for a failing test's report
    )
    # Every queue has a live worker before the first test submits (the web alone is up sooner).
    wait_until(lambda: call("GET", f"{api}/ready")[0] == 200, 60, interval=0.5, message="/ready")
    yield Stack(api=api, public=public, proxy=proxy, other_origin=other_origin, log=log)
    stop()
    proxy.close()
