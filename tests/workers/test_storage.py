"""Storage: S3 through moto's server (real HTTP) and the local disk, behind one interface."""

import dataclasses
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from settings import ConfigError, Settings
from workers.storage import ObjectNotFound, get_storage
from workers.storage.local import FileStorage
from workers.storage.s3 import S3Storage


def fetch(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def s3(settings, s3_server):
    s3_settings = s3_server.settings(settings, prefix="conveyor")
    return get_storage(s3_settings), s3_settings


def test_s3_objects_are_stored_in_the_bucket_under_the_prefix(s3, s3_server):
    storage, s3_settings = s3
    assert isinstance(storage, S3Storage)
    storage.put("users/u1/jobs/j1/output.json", b'{"text": "hi"}', "application/json")

    bucket = s3_settings.storage_url.removeprefix("s3://").split("/")[0]
    stored = s3_server.client().get_object(Bucket=bucket, Key="conveyor/users/u1/jobs/j1/output.json")
    assert stored["Body"].read() == b'{"text": "hi"}'
    assert stored["ContentType"] == "application/json"
    assert storage.get("users/u1/jobs/j1/output.json") == b'{"text": "hi"}'

    storage.delete("users/u1/jobs/j1/output.json")
    with pytest.raises(ObjectNotFound):
        storage.get("users/u1/jobs/j1/output.json")
    storage.delete("users/u1/jobs/j1/output.json")  # deleting twice is fine


def test_s3_delete_prefix_removes_one_users_objects_only(s3):
    storage, _ = s3
    for key in ("users/a/jobs/1/output.json", "users/a/exports/2/x.pdf", "users/ab/jobs/3/output.json"):
        storage.put(key, b"x", "application/octet-stream")
    assert storage.delete_prefix("users/a/") == 2
    assert storage.get("users/ab/jobs/3/output.json") == b"x"
    with pytest.raises(ObjectNotFound):
        storage.get("users/a/exports/2/x.pdf")
    assert storage.delete_prefix("users/a/") == 0


def test_s3_presigned_url_downloads_over_http_then_expires(s3):
    storage, _ = s3
    storage.put("users/u1/exports/e1/roadmap.pdf", b"%PDF-1.4 fake", "application/pdf")
    url = storage.presigned_url("users/u1/exports/e1/roadmap.pdf", expires_in=1, filename="roadmap.pdf")

    status, headers, body = fetch(url)
    assert status == 200 and body == b"%PDF-1.4 fake"
    assert headers["Content-Disposition"] == 'attachment; filename="roadmap.pdf"'

    time.sleep(2.1)
    status, _, body = fetch(url)
    assert status == 403 and b"expired" in body


def test_s3_presigned_url_cannot_be_altered_to_reach_another_object(s3):
    storage, _ = s3
    storage.put("users/u1/a.json", b"mine", "application/json")
    storage.put("users/u2/a.json", b"theirs", "application/json")
    url = storage.presigned_url("users/u1/a.json", expires_in=60)
    assert fetch(url)[0] == 200
    status, _, body = fetch(url.replace("users/u1/", "users/u2/"))
    assert status == 403 and b"theirs" not in body


def test_s3_presigned_url_is_made_for_the_endpoint_the_servers_use(s3, s3_server):
    storage, _ = s3
    storage.put("users/u1/a.json", b"{}", "application/json")
    url = urlsplit(storage.presigned_url("users/u1/a.json", expires_in=60))
    assert (url.scheme, url.hostname, url.port) == ("http", "127.0.0.1", s3_server.port)


def test_s3_presigned_url_is_made_for_the_public_endpoint_when_one_is_set(settings, s3_server):
    # As under docker-compose: the servers reach the store at one host, browsers at another.
    public = f"http://localhost:{s3_server.port}"
    storage = get_storage(dataclasses.replace(s3_server.settings(settings), s3_public_endpoint_url=public))
    storage.put("users/u1/exports/e1/roadmap.md", b"# Roadmap", "text/markdown")
    url = storage.presigned_url("users/u1/exports/e1/roadmap.md", expires_in=60, filename="roadmap.md")

    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == ("http", "localhost", s3_server.port)
    status, _, body = fetch(url)
    assert status == 200 and body == b"# Roadmap"
    # The host is signed: the same link sent to the servers' address is refused.
    status, _, _ = fetch(url.replace(public, s3_server.endpoint_url, 1))
    assert status == 403


def test_a_bucket_that_does_not_exist_is_created_on_first_write(settings, s3_server):
    missing = dataclasses.replace(
        settings, storage_url="s3://conveyor-made-on-write", s3_endpoint_url=s3_server.endpoint_url
    )
    get_storage(missing).put("users/u/x.json", b"{}", "application/json")
    assert get_storage(missing).get("users/u/x.json") == b"{}"


def test_download_links_expire_within_fifteen_minutes(s3, tmp_path, settings):
    storage, _ = s3
    local = FileStorage(tmp_path, secret_key=settings.secret_key, base_url="http://localhost")
    for store in (storage, local):
        with pytest.raises(ValueError):
            store.presigned_url("users/u/x.json", expires_in=901)
        with pytest.raises(ValueError):
            store.presigned_url("users/u/x.json", expires_in=0)


def test_file_storage_round_trip_and_prefix_delete(tmp_path, settings):
    storage = get_storage(dataclasses.replace(settings, storage_url=f"file://{tmp_path}"))
    assert isinstance(storage, FileStorage)
    storage.put("users/u1/jobs/j/output.json", b"[1]", "application/json")
    storage.put("users/u1/exports/e/a.zip", b"PK", "application/zip")
    storage.put("users/u2/jobs/j/output.json", b"[2]", "application/json")
    assert (tmp_path / "users/u1/jobs/j/output.json").read_bytes() == b"[1]"
    assert storage.delete_prefix("users/u1/") == 2
    assert not (tmp_path / "users/u1").exists()
    assert storage.get("users/u2/jobs/j/output.json") == b"[2]"
    with pytest.raises(ObjectNotFound):
        storage.get("users/u1/exports/e/a.zip")


@pytest.mark.parametrize("key", ["../etc/passwd", "users/../../x", "/abs/path", "users//x", "users/u/"])
def test_keys_that_could_escape_their_prefix_are_refused(tmp_path, settings, key):
    storage = FileStorage(tmp_path, secret_key=settings.secret_key, base_url="http://localhost")
    with pytest.raises(ValueError):
        storage.put(key, b"x", "text/plain")


def test_delete_prefix_needs_a_whole_directory(tmp_path, settings):
    storage = FileStorage(tmp_path, secret_key=settings.secret_key, base_url="http://localhost")
    for prefix in ("", "users", "/"):
        with pytest.raises(ValueError):
            storage.delete_prefix(prefix)


def test_storage_settings_are_checked_at_start_up():
    with pytest.raises(ConfigError, match="STORAGE_URL"):
        Settings.from_env({"STORAGE_URL": "ftp://example.com/x"})
    with pytest.raises(ConfigError, match="DOWNLOAD_URL_TTL"):
        Settings.from_env({"DOWNLOAD_URL_TTL": "3600"})
    for bad in ("localhost:9000", "http://localhost:9000/s3", "minio"):
        with pytest.raises(ConfigError, match="S3_PUBLIC_ENDPOINT_URL must be where clients reach the store"):
            Settings.from_env({"S3_PUBLIC_ENDPOINT_URL": bad})
    public = Settings.from_env({"S3_PUBLIC_ENDPOINT_URL": "http://localhost:9000/"})
    assert public.s3_public_endpoint_url == "http://localhost:9000"
    assert Settings.from_env({}).s3_public_endpoint_url == ""
    assert Settings.from_env({"STORAGE_URL": "s3://bucket/prefix"}).storage_url == "s3://bucket/prefix"
