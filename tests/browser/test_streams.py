"""A page on another origin follows a job with a plain EventSource on `urls.stream`:
no header, no cookie, CORS for the allowed origin."""

import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.services import wait_until
from tests.helpers import call
from workers import job_links

PASSWORD = "correct horse battery"
WORDS = " ".join(f"w{n}" for n in range(60))

# Runs in the page: sign up and submit with fetch across origins, then follow the job with
# EventSource, recording every event and every (re)opened connection on `window`.
FOLLOW = """async ({api, email, password, prompt}) => {
  const post = async (path, body, token) => {
    const headers = {"Content-Type": "application/json"};
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(api + path, {method: "POST", headers, body: JSON.stringify(body)});
    return response.json();
  };
  const session = await post("/auth/register", {email, password, name: "Page"});
  const job = await post("/jobs", {tool: "text", input: {prompt}}, session.access_token);
  window.events = [];
  window.opens = 0;
  const source = new EventSource(job.urls.stream);
  source.onopen = () => window.opens++;
  for (const type of ["status", "delta", "progress", "done"]) {
    source.addEventListener(type, (event) => {
      window.events.push({type, id: event.lastEventId, data: JSON.parse(event.data)});
      if (type === "done") source.close();
    });
  }
  return {job, token: session.access_token, user: session.user};
}"""


def follow(page, stack, prompt: str) -> dict:
    page.goto(stack.other_origin + "/index.html")
    return page.evaluate(
        FOLLOW,
        {
            "api": stack.public + "/api/v1",
            "email": f"page-{uuid.uuid4().hex[:8]}@example.com",
            "password": PASSWORD,
            "prompt": prompt,
        },
    )


def events(page) -> list[dict]:
    return page.evaluate("window.events")


def deltas(page) -> list[dict]:
    return [event for event in events(page) if event["type"] == "delta"]


def test_a_page_on_another_origin_streams_a_job_and_resumes_after_a_dropped_connection(page, stack):
    started = follow(page, stack, f"[[slow:0.1]] {WORDS}")
    wait_until(lambda: len(deltas(page)) >= 3, 20, message="the first deltas")

    stack.proxy.cut()  # the connection drops mid-stream, as a restarting server or proxy does it
    stack.proxy.restore()

    wait_until(lambda: events(page) and events(page)[-1]["type"] == "done", 30, message="the done event")
    job = call("GET", f"{stack.api}/jobs/{started['job']['id']}", token=started["token"])[2]
    assert job["status"] == "succeeded"
    assert page.evaluate("window.opens") >= 2  # it did reconnect
    received = deltas(page)
    assert "".join(delta["data"]["text"] for delta in received) == job["output"]["text"]
    ids = [event["id"] for event in events(page)]
    assert len(ids) == len(set(ids))  # nothing repeated
    assert events(page)[-1]["data"] == {"status": "succeeded", "error": None}


def opens(page, url: str) -> dict:
    """What a page's EventSource and fetch get for `url`: whether the source stayed open
    and the status."""
    return page.evaluate(
        """async (url) => {
          const source = new EventSource(url);
          const state = await new Promise((resolve) => {
            source.onopen = () => resolve("open");
            source.onerror = () => resolve(source.readyState === EventSource.CLOSED ? "refused" : "retrying");
          });
          source.close();
          const response = await fetch(url);
          return {state, status: response.status, body: await response.json().catch(() => null)};
        }""",
        url,
    )


def test_the_stream_url_of_one_job_is_refused_for_another(page, stack):
    first = follow(page, stack, "first")
    token = first["token"]
    other = call("POST", f"{stack.api}/jobs", {"tool": "text", "input": {"prompt": "second"}}, token=token)[2]

    own = first["job"]["urls"]["stream"]
    assert opens(page, own)["state"] == "open"
    borrowed = own.replace(first["job"]["id"], other["id"])
    refused = opens(page, borrowed)
    assert refused["state"] == "refused"
    assert refused["status"] in (401, 410) and refused["body"]["code"] == refused["status"]


def test_an_expired_stream_url_is_refused(page, stack, settings):
    started = follow(page, stack, "soon over")
    job = started["job"]
    # The URL as the API handed it out once, its expiry (under the signature) now past: the
    # lifetime's lower bound is a minute, too long to sit out here.
    expired = job_links.mint(
        job_id=uuid.UUID(job["id"]),
        user_id=uuid.UUID(started["user"]["id"]),
        expires_at=int(time.time()) - 1,
        settings=settings,
    )
    url = urlsplit(job["urls"]["stream"])
    query = {**parse_qs(url.query), "token": [expired]}
    refused = opens(page, url._replace(query=urlencode(query, doseq=True)).geturl())
    assert refused["state"] == "refused"
    assert refused["status"] == 410 and "expired" in refused["body"]["message"]
