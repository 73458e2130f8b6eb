"""conveyor.js, imported by a page on another origin straight from the API, as the README
shows: sign up, submit, stream, wait, cancel, and a refresh when the access token is refused."""

import uuid

# The page imports the client from the API's origin (CORS lets an allowed origin do so).
SCRIPT_PRELUDE = """
const { Conveyor } = await import(origin + "/console/conveyor.js");
const conveyor = new Conveyor({ baseUrl: origin });
await conveyor.register({ email, password: "correct horse battery", name: "Page" });
"""


def in_page(page, stack, body: str):
    page.goto(stack.other_origin + "/index.html")
    script = f"async ({{origin, email}}) => {{ {SCRIPT_PRELUDE} {body} }}"
    return page.evaluate(script, {"origin": stack.public, "email": f"js-{uuid.uuid4().hex[:8]}@example.com"})


def test_submit_stream_and_wait(page, stack):
    result = in_page(
        page,
        stack,
        """
        const key = crypto.randomUUID();
        const job = await conveyor.submit("text", { prompt: "[[slow:0.05]] one two three four five six" }, { idempotencyKey: key });
        const again = await conveyor.submit("text", { prompt: "[[slow:0.05]] one two three four five six" }, { idempotencyKey: key });
        let text = "";
        const types = [];
        for await (const event of conveyor.stream(job)) {
          types.push(event.type);
          if (event.type === "delta") text += event.data.text;
        }
        const finished = await conveyor.wait(job);
        return { same: again.id === job.id, text, types, finished };
        """,
    )
    assert result["same"]  # the idempotency key made the second submit the same job
    assert result["types"][-1] == "done" and "delta" in result["types"]
    assert result["finished"]["status"] == "succeeded"
    assert result["text"] == result["finished"]["output"]["text"]


def test_cancel(page, stack):
    words = " ".join(f"w{n}" for n in range(200))
    finished = in_page(
        page,
        stack,
        f"""
        const job = await conveyor.submit("text", {{ prompt: "[[slow:0.3]] {words}" }});
        for await (const event of conveyor.stream(job)) {{
          if (event.type === "delta") break;  // running: now cancel it
        }}
        await conveyor.cancel(job);
        return conveyor.wait(job);
        """,
    )
    assert finished["status"] == "canceled"


def test_a_refused_access_token_is_refreshed_once_and_the_call_sent_again(page, stack):
    result = in_page(
        page,
        stack,
        """
        const before = conveyor.session.refresh_token;
        conveyor.session.access_token = "not-a-token-any-more";
        // Two calls at once share one refresh: a refresh token works only once.
        const [first, second] = await Promise.all([conveyor.request("GET", "/jobs"), conveyor.request("GET", "/usage")]);
        return { rotated: conveyor.session.refresh_token !== before, items: first.items, plan: second.plan, user: conveyor.user };
        """,
    )
    assert result["rotated"] and result["items"] == [] and result["plan"] == "free"
    assert result["user"] is not None  # still signed in
