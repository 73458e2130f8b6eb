"""The plans users are on, in one place. Billing (Stripe) sets `users.plan`; the
rest of the system reads what a plan allows from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    name: str
    running_limit: int  # jobs of one user in flight at once; the rest wait their turn
    priority: bool  # AI jobs go to the priority queue that workers drain first


PLANS: dict[str, Plan] = {
    "free": Plan("free", running_limit=2, priority=False),
    "pro": Plan("pro", running_limit=5, priority=True),
    "business": Plan("business", running_limit=10, priority=True),
}
DEFAULT_PLAN = "free"


def get_plan(name: str | None) -> Plan:
    return PLANS.get(name or DEFAULT_PLAN, PLANS[DEFAULT_PLAN])


def queue_for(plan: Plan, tool_queue: str) -> str:
    """The queue a job of this plan goes to: paid AI work skips ahead."""
    return f"{tool_queue}_priority" if plan.priority and tool_queue == "ai" else tool_queue
