"""The flex lane: a call at OpenAI's `service_tier: "flex"`, at about half the price,
slower, and sometimes refused with 429 "Resource Unavailable" (not charged).

A refused flex call waits (the provider's Retry-After, else a doubling backoff) and is
tried again while the job can afford it: no longer than FLEX_MAX_WAIT, and never past the
job's deadline, which leaves a standard call the time it needs. Then the job runs on the
standard tier, priced as standard.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from workers import catalogue, metrics
from workers.providers.base import Completion, CompletionRequest, OnDelta, Provider, ProviderError

FIRST_WAIT = 1.0
LONGEST_WAIT = 60.0


def complete(
    provider: Provider,
    request: CompletionRequest,
    on_delta: OnDelta | None,
    *,
    give_up_at: float,
    wait: Callable[[float], None] = time.sleep,
) -> Completion:
    """Run the request on its lane. `give_up_at`: the monotonic time after which a refused
    flex call is not tried again (the job's deadline, or FLEX_MAX_WAIT from the start).
    `wait` sleeps between tries (the pipeline's also notices a cancel meanwhile)."""
    if request.service_tier != catalogue.FLEX:
        return provider.complete(request, on_delta)
    backoff = FIRST_WAIT
    while True:
        try:
            return provider.complete(request, on_delta)
        except ProviderError as error:
            if not error.flex_unavailable:
                raise
            pause = min(max(error.retry_after or 0.0, backoff), LONGEST_WAIT)
            if time.monotonic() + pause >= give_up_at:
                break
            wait(pause)
            backoff = min(backoff * 2, LONGEST_WAIT)
    metrics.flex_ran_standard(model=request.model)
    return provider.complete(dataclasses.replace(request, service_tier=None), on_delta)
