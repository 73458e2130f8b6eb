"""The API's Swagger UI works with no network: every asset comes from the app."""

from playwright.sync_api import expect


def test_swagger_ui_shows_the_operations_with_no_network(page, stack):
    blocked = []

    def only_the_app(route):
        if route.request.url.startswith(stack.public + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_app)
    page.goto(stack.url("/api/v1/docs"))

    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.get_by_text("/api/v1/jobs/{job_id}/cancel", exact=True).first).to_be_visible()
    assert blocked == []
