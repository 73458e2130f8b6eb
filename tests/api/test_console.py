"""The console's files as the API serves them: what a browser is allowed to run."""

from urllib.parse import urlsplit


def test_the_console_is_served_with_a_strict_policy(client, settings):
    response = client.get("/console/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert b'<script type="module" src="app.js">' in response.data
    policy = dict(
        part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"  # no inline script, nothing from elsewhere
    assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    public = urlsplit(settings.public_base_url)
    assert policy["connect-src"] == f"'self' {public.scheme}://{public.netloc}"  # where urls.stream points
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_console_has_no_inline_script(client):
    page = client.get("/console/").data.decode()
    assert page.count("<script") == page.count('<script type="module" src=')


def test_its_modules_are_served_as_javascript(client):
    for name in ("app.js", "conveyor.js"):
        response = client.get(f"/console/{name}")
        assert response.status_code == 200
        assert response.mimetype in ("text/javascript", "application/javascript")


def test_console_without_the_slash_redirects_to_it(client):
    response = client.get("/console")
    assert response.status_code == 308 and response.headers["Location"].endswith("/console/")


def test_a_missing_file_is_a_404_in_the_error_shape(client):
    response = client.get("/console/nope.js")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404
    assert client.get("/console/../settings.py").status_code == 404
