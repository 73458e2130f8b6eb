"""The console's Batches view: a batch submitted over the API is listed with its counts,
opened to show its jobs, and canceled from the console."""

from playwright.sync_api import expect

from tests.browser.test_console import PASSWORD, sign_up
from tests.helpers import call, mark_verified


def test_a_batch_is_listed_with_counts_opened_and_canceled(page, stack):
    email = sign_up(page, stack)
    status, _, session = call("POST", f"{stack.api}/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200, session
    mark_verified(session["user"]["id"], email)  # an unverified account's token allowance is small
    words = " ".join(f"w{n}" for n in range(200))
    jobs = [{"tool": "text", "input": {"prompt": f"[[slow:0.3]] {n} {words}"}} for n in range(3)]
    status, _, body = call("POST", f"{stack.api}/jobs/batch", {"jobs": jobs}, token=session["access_token"])
    assert status == 202 and all("job" in item for item in body["items"]), body
    batch_id = body["batch"]["id"]

    batches = page.get_by_role("table", name="Your batches")
    page.get_by_role("button", name="Refresh batches").click()
    listed = batches.locator("tbody tr", has_text=batch_id)
    cells = listed.locator("td")
    expect(cells.nth(1)).to_have_text("active")
    expect(cells.nth(2)).to_have_text("3")  # its jobs
    expect(cells.nth(3)).to_contain_text("queued")  # the plan's running limit holds some back

    listed.get_by_role("button", name=f"Open {batch_id}").click()
    opened = page.get_by_role("region", name="Batch")
    expect(opened.get_by_role("table", name="Batch jobs").locator("tbody tr")).to_have_count(3)
    opened.get_by_role("button", name="Cancel batch").click()

    expect(opened.get_by_label("Batch counts")).to_have_text("canceled 3")  # the running one too
    expect(opened.get_by_label("Batch status")).to_have_text("finished")
    expect(opened.get_by_role("button", name="Cancel batch")).to_be_disabled()
    expect(cells.nth(1)).to_have_text("finished")
    expect(cells.nth(3)).to_have_text("canceled 3")
    for item in body["items"]:
        job = call("GET", f"{stack.api}/jobs/{item['job']['id']}", token=session["access_token"])[2]
        assert job["status"] == "canceled"
