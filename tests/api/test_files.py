"""Local-disk storage: downloads served by the API itself at /api/v1/files/<token>,
fetched over real HTTP like an S3 presigned URL (no credentials, expiring)."""

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from werkzeug.serving import make_server

from api import create_app
from tests.conftest import _free_port
from workers.storage import get_storage


@pytest.fixture
def live(settings, tmp_path):
    """The API on a real port, storing on the local disk; yields its settings."""
    port = _free_port()
    live_settings = dataclasses.replace(
        settings, storage_url=f"file://{tmp_path}", public_base_url=f"http://127.0.0.1:{port}"
    )
    server = make_server("127.0.0.1", port, create_app(live_settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield live_settings
    server.shutdown()
    thread.join(timeout=5)


def fetch(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_a_download_link_serves_the_file_without_credentials(live):
    storage = get_storage(live)
    storage.put("users/u1/exports/e1/plan.pdf", b"%PDF-1.4 plan", "application/pdf")
    url = storage.presigned_url("users/u1/exports/e1/plan.pdf", expires_in=60, filename="plan.pdf")
    assert url.startswith(f"{live.public_base_url}/api/v1/files/")

    status, headers, body = fetch(url)
    assert status == 200 and body == b"%PDF-1.4 plan"
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == 'attachment; filename="plan.pdf"'
    assert "no-store" in headers["Cache-Control"]


def test_the_link_stops_working_once_it_expires(live):
    storage = get_storage(live)
    storage.put("users/u1/jobs/j1/output.json", b'{"text": "big"}', "application/json")
    url = storage.presigned_url("users/u1/jobs/j1/output.json", expires_in=1)
    assert fetch(url)[0] == 200

    time.sleep(1.2)
    status, _, body = fetch(url)
    error = json.loads(body)
    assert status == 410 and error["code"] == 410 and "expired" in error["message"]


def test_an_altered_link_is_refused(live):
    storage = get_storage(live)
    storage.put("users/u1/a.json", b"{}", "application/json")
    url = storage.presigned_url("users/u1/a.json", expires_in=60)
    token = url.rsplit("/", 1)[1]
    tampered = url[: -len(token)] + token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    status, _, body = fetch(tampered)
    assert status == 403 and b"not valid" in body
    assert fetch(f"{live.public_base_url}/api/v1/files/not-a-token")[0] == 403


def test_a_link_to_a_removed_file_is_404(live):
    storage = get_storage(live)
    storage.put("users/u1/gone.json", b"{}", "application/json")
    url = storage.presigned_url("users/u1/gone.json", expires_in=60)
    storage.delete("users/u1/gone.json")
    assert fetch(url)[0] == 404


def test_a_link_signed_with_another_secret_is_refused(live, settings, tmp_path):
    other = dataclasses.replace(live, secret_key="another-secret-" + "x" * 32)
    get_storage(live).put("users/u1/a.json", b"{}", "application/json")
    url = get_storage(other).presigned_url("users/u1/a.json", expires_in=60)
    assert fetch(url)[0] == 403
