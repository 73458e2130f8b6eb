"""The request hash an `Idempotency-Key` is checked against. A key sent again must find
its job for as long as it is kept, across deploys: a change to what the hash covers or
how it is written (a field added to every request, a date written another way) turns
every retry of an earlier submit into a 409. These hashes are pinned on purpose; a new
optional field joins the hash only when it is set, so they stay as they are."""

import datetime as dt

from api.services.jobs import check_request

WHEN = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def request_hash(settings, **fields) -> str:
    return check_request(
        settings, tool="text", input={"prompt": "Hello"}, model="gpt-4o-mini", **fields
    ).request_hash


def test_a_request_with_no_optional_field_keeps_its_hash(settings):
    assert request_hash(settings) == "502a7457fc4ed908d35773785569252e9d8711db026cc96ef26183744351d4c0"


def test_unset_and_default_optional_fields_leave_the_hash_as_it_was(settings):
    plain = request_hash(settings)
    assert request_hash(settings, notify_email=False, cache="default") == plain


def test_each_optional_field_keeps_its_place_in_the_hash(settings):
    assert (
        request_hash(
            settings,
            webhook_url="http://127.0.0.1:9/hook",
            notify_email=True,
            run_at=WHEN,
            cache="bypass",
            lane="batch",
            deadline=WHEN + dt.timedelta(hours=24),
        )
        == "8cdaa0dcd725c6e3e3b49e9accda9698743133cbaa816909f0f983316e8cf88b"
    )
    assert (
        request_hash(settings, delay_seconds=60, service_tier="standard")
        == "422ab6a39f996af12fd105e3e67ca531c01c6834b41619613bf2a586958a81c7"
    )
