"""The benchmark's plan: the business plan with its limits lifted. Bench only.

The throughput scenarios would otherwise measure the plan, not the machinery: a
business user may have 10 jobs in flight (the rest wait in Postgres and are never
sent while no worker runs), 20,000 jobs a day, 1,200 submissions a minute and 50M
tokens a month. The bench's users are on `business`, and this raises those numbers
in the processes the bench starts (through bench/conveyor_wsgi.py and
bench/conveyor_celery.py). Every check still runs on every submit: the rate limit
in Redis, the day's job count and the token reservation in Postgres, admission.
"""

from __future__ import annotations

import dataclasses

PLAN = "business"
LIMITS = {
    "running_limit": 1_000_000,
    "jobs_per_day": 100_000_000,
    "monthly_tokens": 10**15,
    "request_rate": "10000000/minute",
}


def install() -> None:
    from workers import plans

    plans.PLANS[PLAN] = dataclasses.replace(plans.PLANS[PLAN], **LIMITS)
