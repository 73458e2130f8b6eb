"""The flex lane through the real SDK and the fake server: the call carries the tier, a
"Resource Unavailable" answer is not retried by the provider itself, and the lane waits
for room until its time is up, then calls the standard tier."""

from __future__ import annotations

import time

from tests.workers.providers.calls import ask, sent, unique
from workers import lanes
from workers.providers.base import RATE_LIMITED, ProviderError


def test_a_flex_call_carries_the_tier_and_is_priced_on_its_lane(fake_openai, provider):
    content = unique("flex please")
    completion = lanes.complete(
        provider, ask(content, service_tier="flex"), None, give_up_at=time.monotonic()
    )
    assert [body.get("service_tier") for body in sent(fake_openai, content)] == ["flex"]
    assert completion.lane == "flex"
    standard = unique("standard please")
    assert provider.complete(ask(standard)).lane == "standard"
    assert "service_tier" not in sent(fake_openai, standard)[0]


def test_resource_unavailable_is_not_retried_by_the_provider(fake_openai, provider, sleep):
    content = unique("[[flex-busy]] busy")
    try:
        provider.complete(ask(content, service_tier="flex"))
    except ProviderError as error:
        assert error.code == RATE_LIMITED and error.flex_unavailable and error.transient
    else:
        raise AssertionError("the busy flex tier answered")
    assert len(sent(fake_openai, content)) == 1 and sleep.waits == []


def test_the_lane_waits_for_room_then_runs_on_the_standard_tier(fake_openai, provider):
    content = unique("[[flex-busy]] wait for it")
    waits: list[float] = []
    completion = lanes.complete(
        provider,
        ask(content, service_tier="flex"),
        None,
        give_up_at=time.monotonic() + 1.5,
        wait=waits.append,
    )
    tiers = [body.get("service_tier") for body in sent(fake_openai, content)]
    # Waits of 1 s, then 2 s would pass the time it has: two flex tries, then standard.
    assert waits == [1.0] and tiers == ["flex", "flex", None]
    assert completion.lane == "standard"


def test_room_found_on_a_later_try_stays_on_flex(fake_openai, provider):
    content = unique("[[flex-busy:1]] second time lucky")
    waits: list[float] = []
    completion = lanes.complete(
        provider, ask(content, service_tier="flex"), None, give_up_at=time.monotonic() + 60, wait=waits.append
    )
    assert [body.get("service_tier") for body in sent(fake_openai, content)] == ["flex", "flex"]
    assert completion.lane == "flex" and waits == [1.0]
