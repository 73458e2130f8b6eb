"""The console at /console/, used as a person would: by labels and button names."""

import re
import subprocess
import sys
import uuid

from playwright.sync_api import expect

from tests.fakes.services import ROOT, wait_until
from tests.helpers import call

PASSWORD = "correct horse battery"


def sign_up(page, stack, email: str | None = None) -> str:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(stack.url("/console/"))
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_label("Tool", exact=True)).to_be_visible()
    return email


def run(page, tool: str, *, refused: bool = False, **fields: str) -> None:
    """Pick the tool, fill its fields, press Run; the run must start unless `refused`."""
    page.get_by_label("Tool", exact=True).select_option(tool)
    expect(page.locator(f'#tool-fields[data-tool="{tool}"]')).to_be_attached()  # its fields are in
    for name, value in fields.items():
        page.get_by_label(name, exact=True).fill(value)
    page.get_by_role("button", name="Run", exact=True).click()
    # The run has started (a status), or the console said why not (its alert): fail with that.
    page.wait_for_function(
        "() => document.querySelector('#job-status').textContent !== 'none yet'"
        " || !document.querySelector('#notice').hidden",
        polling=100,  # not on animation frames, which a headless page may not get
        timeout=60_000,  # past the broker pool's wait, so that a stalled submit shows its error
    )
    notice = page.locator("#notice")
    if not refused:
        assert notice.is_hidden(), f"the run did not start: {notice.text_content()}"


def test_a_new_user_signs_up_runs_a_text_job_and_sees_the_streamed_text(page, stack):
    sign_up(page, stack)
    run(page, "text", prompt="[[slow:0.05]] [[reply:queues keep the web fast and the workers busy]]")

    output = page.get_by_role("log", name="Output")
    expect(output).to_have_text("queues keep the web fast and the workers busy")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#history tbody tr")).to_have_count(1)
    expect(page.locator("#history tbody tr").first).to_contain_text("succeeded")


def test_cancel_stops_a_slow_job_and_the_console_shows_it_canceled(page, stack):
    sign_up(page, stack)
    words = " ".join(f"w{n}" for n in range(200))
    run(page, "text", prompt=f"[[slow:0.3]] {words}")
    expect(page.get_by_role("log", name="Output")).to_contain_text("w")  # it is running
    page.get_by_role("button", name="Cancel", exact=True).click()

    expect(page.locator("#job-status")).to_have_text("canceled")
    expect(page.locator("#job-error")).to_contain_text("Canceled")
    expect(page.locator("#history tbody tr").first).to_contain_text("canceled")


def test_usage_moves_after_a_run(page, stack):
    sign_up(page, stack)
    quota = page.get_by_role("status", name="Tokens used")
    expect(quota).to_contain_text("0 of ")
    before = quota.inner_text()

    run(page, "text", prompt="Say something short.")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(quota).not_to_have_text(before)
    expect(page.locator("#usage-totals")).to_contain_text("1 jobs")


def test_an_api_key_is_shown_once_and_can_be_revoked(page, stack):
    sign_up(page, stack)
    page.get_by_label("Key name", exact=True).fill("ci")
    page.get_by_role("button", name="Create key").click()

    secret = page.get_by_label("New key")
    expect(secret).to_have_text(re.compile(r"\S{20,}"))
    key = secret.inner_text()
    status, _, body = call("GET", f"{stack.api}/jobs", headers={"X-API-Key": key})
    assert status == 200, body  # the key shown works

    page.reload()  # shown once: a fresh page has the key listed, its secret nowhere
    expect(page.locator("#keys li")).to_have_count(1)
    expect(page.locator("#new-key")).to_be_hidden()
    assert key not in page.content()

    page.get_by_role("button", name="Revoke ci").click()
    expect(page.locator("#keys li")).to_contain_text("revoked")
    assert call("GET", f"{stack.api}/jobs", headers={"X-API-Key": key})[0] == 401


def test_an_admin_retries_a_failed_job(page, stack):
    # Someone's job fails (the provider refuses it once), as the admin will find it.
    session = register(stack)
    failed = failed_job(stack, session)
    sign_in_as_admin(page, stack)

    admin = page.get_by_role("region", name="Admin")
    admin.get_by_label("Status", exact=True).select_option("failed")
    admin.get_by_role("button", name="Search").click()
    admin.get_by_role("button", name=f"Retry {failed['id']}").click()

    expect(admin.locator("#audit")).to_contain_text("job.retry")
    retried = wait_until(
        lambda: next((j for j in jobs_of(stack, session) if j.get("retry_of") == failed["id"]), None),
        10,
        message="the retried job",
    )
    wait_until(
        lambda: job_status(stack, session, retried["id"]) == "succeeded", 20, message="the retry to succeed"
    )

    admin.get_by_role("button", name="Show stats").click()
    expect(admin.get_by_role("table", name="Stats per tool")).to_contain_text("text")
    expect(admin.locator("#stats-summary")).to_contain_text("failed")
    expect(admin.locator("#stats-summary")).to_contain_text("Response cache: 0 hits, 0 misses")
    expect(admin.get_by_role("list", name="Failures by code")).not_to_be_empty()


def test_an_admin_counts_then_retries_every_failed_job(page, stack):
    session = register(stack)
    failed = {failed_job(stack, session)["id"] for _ in range(2)}
    sign_in_as_admin(page, stack)

    bulk = page.get_by_role("form", name="Bulk actions")
    bulk.get_by_label("Bulk status").select_option("failed")
    bulk.get_by_role("button", name="Count").click()
    expect(page.get_by_label("Bulk result")).to_have_text("2 jobs match")

    bulk.get_by_role("button", name="Retry all").click()
    expect(page.get_by_label("Bulk result")).to_have_text("Retried 2 of 2 matched (0 skipped)")
    retries = [job["id"] for job in jobs_of(stack, session) if job.get("retry_of") in failed]
    assert len(retries) == 2
    jobs = page.locator("#admin-jobs")
    for retry in retries:
        expect(jobs).to_contain_text(retry)
    expect(page.locator("#audit")).to_contain_text("jobs.bulk_retry")
    # The provider refused each prompt once only: both retries succeed, none left running.
    wait_until(
        lambda: {job_status(stack, session, retry) for retry in retries} == {"succeeded"},
        20,
        message="the retries to succeed",
    )


def register(stack) -> dict:
    """Someone else's account, made through the API: its session."""
    email = f"someone-{uuid.uuid4().hex[:8]}@example.com"
    status, _, session = call(
        "POST", f"{stack.api}/auth/register", {"email": email, "password": PASSWORD, "name": "S"}
    )
    assert status == 201, session
    return session


def failed_job(stack, session) -> dict:
    """A job of `session`'s that failed: the fake provider refuses its prompt once."""
    prompt = f"[[fail:400:1]] retry me {uuid.uuid4().hex}"
    job = call(
        "POST",
        f"{stack.api}/jobs",
        {"tool": "text", "input": {"prompt": prompt}},
        token=session["access_token"],
    )[2]
    wait_until(lambda: job_status(stack, session, job["id"]) == "failed", 20, message="the job to fail")
    return job


def sign_in_as_admin(page, stack) -> None:
    """Sign up in the console, be made an admin by the CLI, and log in again to be one."""
    email = sign_up(page, stack)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "users", "set-role", email, "admin"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("region", name="Admin")).to_be_visible()


def job_status(stack, session, job_id: str) -> str:
    return call("GET", f"{stack.api}/jobs/{job_id}", token=session["access_token"])[2]["status"]


def jobs_of(stack, session) -> list[dict]:
    return call("GET", f"{stack.api}/jobs", token=session["access_token"])[2]["items"]


def test_a_job_run_at_a_later_time_is_scheduled_and_can_be_canceled(page, stack):
    sign_up(page, stack)
    page.get_by_label("Run at", exact=True).fill("2099-01-01T09:00")  # too far ahead: refused
    run(page, "text", refused=True, prompt="Tomorrow's news.")
    expect(page.get_by_role("alert")).to_contain_text("30 days")

    tomorrow = page.evaluate(
        "() => { const d = new Date(Date.now() + 86400000); d.setMinutes(d.getMinutes() - d.getTimezoneOffset());"
        " return d.toISOString().slice(0, 16); }"
    )
    page.get_by_label("Run at", exact=True).fill(tomorrow)
    page.get_by_role("button", name="Run", exact=True).click()

    expect(page.locator("#job-status")).to_contain_text("scheduled for")
    expect(page.locator("#history tbody tr").first).to_contain_text("scheduled")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.locator("#job-status")).to_have_text("canceled")
    expect(page.locator("#history tbody tr").first).to_contain_text("canceled")


def test_a_finished_job_is_rated_then_deleted_from_the_history(page, stack):
    sign_up(page, stack)
    run(page, "text", prompt="[[reply:rate me]]")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(1)

    history.first.get_by_role("button", name="Rate up").click()
    expect(history.first.get_by_role("button", name="Rate up")).to_have_attribute("aria-pressed", "true")

    page.once("dialog", lambda dialog: dialog.accept())
    history.first.get_by_role("button", name="Delete").click()
    expect(history).to_have_count(0)
