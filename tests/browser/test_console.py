"""The console at /console/, used as a person would: by labels and button names."""

import uuid

from playwright.sync_api import expect

PASSWORD = "correct horse battery"


def sign_up(page, stack, email: str | None = None) -> str:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(stack.url("/console/"))
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_label("Tool", exact=True)).to_be_visible()
    return email


def run(page, tool: str, **fields: str) -> None:
    page.get_by_label("Tool", exact=True).select_option(tool)
    for name, value in fields.items():
        page.get_by_label(name, exact=True).fill(value)
    page.get_by_role("button", name="Run", exact=True).click()


def test_a_new_user_signs_up_runs_a_text_job_and_sees_the_streamed_text(page, stack):
    sign_up(page, stack)
    run(page, "text", prompt="[[slow:0.05]] [[reply:queues keep the web fast and the workers busy]]")

    output = page.get_by_role("log", name="Output")
    expect(output).to_have_text("queues keep the web fast and the workers busy")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#history tbody tr")).to_have_count(1)
    expect(page.locator("#history tbody tr").first).to_contain_text("succeeded")
