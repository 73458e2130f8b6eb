"""Exports: a succeeded job as md/json/pdf/docx, and all of a user's data as a zip."""

import dataclasses
import io
import json
import uuid
import zipfile
from urllib.parse import urlsplit

import docx
import pypdf
import pytest
from sqlalchemy import select

from db.models import EmailOutbox, Job
from db.repositories import conversations, user_data
from db.session import session_scope
from tasks import exports as export_tasks
from tests.conftest import _free_port
from tests.helpers import API, register
from tests.rows import finished_job
from workers import outputs, plans
from workers.exports import build
from workers.storage import get_storage, job_output_key

ROADMAP = {
    "title": "Open a bakery",
    "summary": "Test demand first.",
    "phases": [
        {
            "title": "Market test",
            "duration": "Month 1",
            "goals": ["Sell at a market"],
            "milestones": ["50 loaves"],
            "actions": ["Bake"],
        },
        {
            "title": "Lease",
            "duration": "Months 2-3",
            "goals": ["Find a site"],
            "milestones": ["Signed lease"],
            "actions": ["Visit"],
        },
    ],
}


@pytest.fixture
def user(client):
    headers, body = register(client, name="Grace")
    return headers, uuid.UUID(body["user"]["id"]), body["user"]["email"]


def download(client, url: str):
    """Fetch a download link (local-disk storage: served by the API at its path)."""
    return client.get(urlsplit(url).path)


def export_and_build(client, headers, job_id, format: str) -> dict:
    response = client.post(f"{API}/jobs/{job_id}/exports", json={"format": format}, headers=headers)
    assert response.status_code == 202, response.get_json()
    export = response.get_json()
    assert response.headers["Location"] == f"{API}/exports/{export['id']}"
    assert export["status"] == "queued" and export["url"] is None and export["job_id"] == str(job_id)
    assert export_tasks.build(export["id"]) == "succeeded"
    ready = client.get(f"{API}/exports/{export['id']}", headers=headers).get_json()
    assert ready["status"] == "succeeded" and ready["error"] is None
    return ready


def test_a_roadmap_exports_as_a_pdf_showing_its_phases(client, user):
    headers, user_id, _ = user
    job_id = finished_job(
        user_id, tool="roadmap", input={"goal": "bakery", "timeline": "90_days"}, output=ROADMAP
    )
    ready = export_and_build(client, headers, job_id, "pdf")
    assert ready["filename"] == f"roadmap-{str(job_id)[:8]}.pdf" and ready["expires_at"]

    response = download(client, ready["url"])
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.data)).pages)
    assert "Phase 1: Market test" in text and "Phase 2: Lease" in text and "Signed lease" in text


def test_a_document_exports_as_docx_with_its_sections(client, user):
    headers, user_id, _ = user
    text = "# Business plan\n\n## Problem\n\nNo good bread.\n\n## Solution\n\n- Sourdough\n"
    job_id = finished_job(
        user_id,
        tool="document",
        input={"document_type": "business_plan", "details": "x"},
        output={"text": text},
    )
    ready = export_and_build(client, headers, job_id, "docx")
    parsed = docx.Document(io.BytesIO(download(client, ready["url"]).data))
    headings = [p.text for p in parsed.paragraphs if p.style.name.startswith("Heading")]
    assert parsed.paragraphs[0].text == "Business plan" and headings == ["Problem", "Solution"]


def test_markdown_and_json_exports(client, user):
    headers, user_id, _ = user
    job_id = finished_job(user_id, output={"text": "# Haiku\n\nQueues wait."})
    markdown = download(client, export_and_build(client, headers, job_id, "md")["url"])
    assert markdown.data.decode() == "# Haiku\n\nQueues wait."  # a text output is exported as written
    exported = json.loads(download(client, export_and_build(client, headers, job_id, "json")["url"]).data)
    assert exported["id"] == str(job_id) and exported["output"] == {"text": "# Haiku\n\nQueues wait."}


def test_a_stored_output_is_exported_too(client, user, settings):
    headers, user_id, _ = user
    job_id = finished_job(user_id, tool="roadmap", input={"goal": "g", "timeline": "30_days"})
    key = job_output_key(user_id, job_id)
    get_storage(settings).put(key, outputs.encode(ROADMAP), "application/json")
    with session_scope() as session:
        session.get(Job, job_id).output_key = key
    ready = export_and_build(client, headers, job_id, "md")
    assert "## Phase 2: Lease" in download(client, ready["url"]).data.decode()


def test_each_get_gives_a_working_link(client, user):
    headers, user_id, _ = user
    job_id = finished_job(user_id, output={"text": "hi"})
    ready = export_and_build(client, headers, job_id, "md")
    again = client.get(f"{API}/exports/{ready['id']}", headers=headers).get_json()
    assert again["expires_at"] >= ready["expires_at"]
    assert download(client, again["url"]).data == b"hi"


def test_asking_again_while_it_is_being_built_returns_the_same_export(client, user):
    headers, user_id, _ = user
    job_id = finished_job(user_id, output={"text": "hi"})
    first = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "pdf"}, headers=headers).get_json()
    second = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "pdf"}, headers=headers).get_json()
    other = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "md"}, headers=headers).get_json()
    assert first["id"] == second["id"] != other["id"]
    assert export_tasks.build(first["id"]) == "succeeded"
    assert export_tasks.build(first["id"]) is None  # a duplicate message does nothing


@pytest.mark.parametrize("status,code", [("failed", "provider_error"), ("canceled", "canceled")])
def test_only_a_succeeded_job_can_be_exported(client, user, status, code):
    headers, user_id, _ = user
    job_id = finished_job(user_id, status=status, error_code=code)
    response = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "pdf"}, headers=headers)
    assert response.status_code == 409
    assert response.get_json()["message"] == f"Only a succeeded job can be exported; this one is {status}."


def test_a_job_whose_output_retention_removed_cannot_be_exported(client, user):
    headers, user_id, _ = user
    job_id = finished_job(user_id, output=None)
    response = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "md"}, headers=headers)
    assert response.status_code == 409 and "retention" in response.get_json()["message"]


def test_an_unknown_format_is_422(client, user):
    headers, user_id, _ = user
    job_id = finished_job(user_id, output={"text": "hi"})
    response = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "exe"}, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"]["format"] == ["format must be one of: md, json, pdf, docx."]


def test_another_users_job_and_export_are_404(client, user):
    headers, user_id, _ = user
    job_id = finished_job(user_id, output={"text": "hi"})
    export = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "md"}, headers=headers).get_json()
    stranger, _ = register(client)
    assert (
        client.post(f"{API}/jobs/{job_id}/exports", json={"format": "md"}, headers=stranger).status_code
        == 404
    )
    assert client.get(f"{API}/exports/{export['id']}", headers=stranger).status_code == 404
    assert client.get(f"{API}/exports/{uuid.uuid4()}", headers=headers).status_code == 404
    assert client.get(f"{API}/exports/{export['id']}").status_code == 401


def test_the_account_export_is_a_zip_of_everything_and_is_emailed(client, user):
    headers, user_id, email = user
    finished_job(user_id, output={"text": "first"})
    finished_job(user_id, status="failed", error_code="timeout")
    with session_scope() as session:
        conversation = conversations.create(session, user_id=user_id, tool="coach", title="Offers")
        job_id = finished_job(user_id, tool="coach", input={"message": "Help"}, output={"text": "Sure"})
        conversations.add_user_message(session, conversation=conversation, content="Help", job_id=job_id)
    with session_scope() as session:
        conversations.add_reply(session, job_id=job_id, content="Sure")

    response = client.post(f"{API}/users/me/export", headers=headers)
    assert response.status_code == 202
    export = response.get_json()
    assert export["format"] == "zip" and export["job_id"] is None and export["status"] == "queued"
    assert export_tasks.build(export["id"]) == "succeeded"

    ready = client.get(f"{API}/exports/{export['id']}", headers=headers).get_json()
    archive = zipfile.ZipFile(io.BytesIO(download(client, ready["url"]).data))
    assert {"profile.json", "jobs.json", "conversations.json", "usage.json"} <= set(archive.namelist())
    profile = json.loads(archive.read("profile.json"))
    assert profile["email"] == email and profile["name"] == "Grace"
    exported_jobs = json.loads(archive.read("jobs.json"))
    assert [job["status"] for job in exported_jobs] == ["succeeded", "failed", "succeeded"]
    assert exported_jobs[0]["output"] == {"text": "first"}
    assert exported_jobs[1]["error"]["code"] == "timeout"
    threads = json.loads(archive.read("conversations.json"))
    assert [(m["role"], m["content"]) for m in threads[0]["messages"]] == [
        ("user", "Help"),
        ("assistant", "Sure"),
    ]
    assert "calls" in json.loads(archive.read("usage.json"))

    with session_scope() as session:
        emails = session.scalars(select(EmailOutbox).where(EmailOutbox.template == "export_ready")).all()
        assert len(emails) == 1
        assert emails[0].to_address == email and emails[0].dedupe_key == f"export_ready:{export['id']}"
        link = emails[0].context["link"]
        assert emails[0].context["expires_at"] and emails[0].context["name"] == "Grace"
    assert download(client, link).status_code == 200
    assert export_tasks.build(export["id"]) is None  # a second delivery sends no second email


def test_user_data_reads_only_the_callers_rows(user):
    _, user_id, _ = user
    finished_job(user_id, output={"text": "mine"})
    with session_scope() as session:
        assert len(user_data.jobs_of(session, user_id=uuid.uuid4())) == 0
        assert len(user_data.jobs_of(session, user_id=user_id)) == 1


def test_an_export_the_store_cannot_take_fails_with_a_reason(client, user, settings):
    headers, user_id, _ = user
    job_id = finished_job(user_id, output={"text": "hi"})
    export = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "md"}, headers=headers).get_json()
    unreachable = dataclasses.replace(
        settings, storage_url="s3://nowhere", s3_endpoint_url=f"http://127.0.0.1:{_free_port()}"
    )
    assert build.build(uuid.UUID(export["id"]), settings=unreachable).status == "failed"
    failed = client.get(f"{API}/exports/{export['id']}", headers=headers).get_json()
    assert failed["status"] == "failed" and failed["url"] is None
    assert failed["error"]["code"] == "storage_error"
    # Asking again starts a new export rather than returning the failed one.
    again = client.post(f"{API}/jobs/{job_id}/exports", json={"format": "md"}, headers=headers).get_json()
    assert again["id"] != export["id"] and again["status"] == "queued"


def test_the_account_export_is_limited_per_user(client, settings):
    from api import create_app

    app = create_app(dataclasses.replace(settings, account_export_rate_limit="2/day"))
    app.config["TESTING"] = True
    limited = app.test_client()
    headers, _ = register(limited)
    for _ in range(2):
        export = limited.post(f"{API}/users/me/export", headers=headers).get_json()
        assert export_tasks.build(export["id"]) == "succeeded"
    response = limited.post(f"{API}/users/me/export", headers=headers)
    body = response.get_json()
    assert response.status_code == 429 and body["status"] == "Too Many Requests", body
    assert "your data export too often" in body["message"] and "Try again in" in body["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 24 * 3600
    with session_scope() as session:
        emails = session.scalars(select(EmailOutbox).where(EmailOutbox.template == "export_ready")).all()
    assert len(emails) == 2  # no third zip, no third email
    other, _ = register(limited)
    assert limited.post(f"{API}/users/me/export", headers=other).status_code == 202  # counted per user


def test_job_exports_are_under_the_plans_request_rate(client, user, monkeypatch):
    headers, user_id, _ = user
    monkeypatch.setitem(
        plans.PLANS, "free", dataclasses.replace(plans.PLANS["free"], request_rate="2/minute")
    )
    job_id = finished_job(user_id, output={"text": "done"})
    codes = [
        client.post(f"{API}/jobs/{job_id}/exports", json={"format": "md"}, headers=headers).status_code
        for _ in range(3)
    ]
    assert codes == [202, 202, 429]
