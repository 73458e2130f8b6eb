"""The plans users are on, in one place. Billing (Stripe) sets `users.plan`; the
rest of the system reads what a plan allows from here.

Which tools a plan may use is declared on each tool (`Tool.plans`, next to the
tool's own definition); `tools_for` and `allows_tool` are the one way to ask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from settings import Settings
from workers import catalogue
from workers.tools import all_tools, get_tool


@dataclass(frozen=True)
class Plan:
    name: str
    running_limit: int  # jobs of one user in flight at once; the rest wait their turn
    priority: bool  # AI jobs go to the priority queue that workers drain first
    title: str = ""
    monthly_tokens: int = 200_000  # input + output tokens per calendar month (UTC)
    jobs_per_day: int = 100  # jobs submitted per UTC day
    # Models a job goes on to, in order, when its own fails (before the catalogue's own list).
    fallbacks: tuple[str, ...] = ()
    # The lane a job of a tool that is not interactive runs on unless it asks: None is
    # standard, "flex" the cheaper, slower tier (workers/lanes.py).
    background_service_tier: str | None = None
    retention_days: int = 30  # finished jobs' results are kept this long
    request_rate: str = "60/minute"  # job submissions per user (a flask-limiter limit string)
    scheduled_limit: int = 10  # jobs of one user waiting for their run_at at once


PLANS: dict[str, Plan] = {
    "free": Plan(
        "free",
        running_limit=2,
        priority=False,
        title="Free",
        monthly_tokens=200_000,
        jobs_per_day=100,
        retention_days=7,
        request_rate="60/minute",
        scheduled_limit=10,
        background_service_tier="flex",  # when the model has a flex lane (workers/catalogue.py)
    ),
    "pro": Plan(
        "pro",
        running_limit=5,
        priority=True,
        title="Pro",
        monthly_tokens=5_000_000,
        jobs_per_day=2_000,
        retention_days=30,
        request_rate="300/minute",
        scheduled_limit=100,
    ),
    "business": Plan(
        "business",
        running_limit=10,
        priority=True,
        title="Business",
        monthly_tokens=50_000_000,
        jobs_per_day=20_000,
        retention_days=365,
        request_rate="1200/minute",
        scheduled_limit=1000,
    ),
}
DEFAULT_PLAN = "free"

# Until its email address is verified, an account gets at most this much of its plan:
# enough to try the tools, too little to be worth an account made with an address that
# is not the maker's (each registration also emails that address).
UNVERIFIED_JOBS_PER_DAY = 5
UNVERIFIED_MONTHLY_TOKENS = 20_000
ORDER = ("free", "pro", "business")  # cheapest first: "needs the pro plan or higher"


def get_plan(name: str | None) -> Plan:
    return PLANS.get(name or DEFAULT_PLAN, PLANS[DEFAULT_PLAN])


def allowance(plan: Plan, *, email_verified: bool) -> Plan:
    """What a user of this plan may submit: the plan itself once their email is
    verified (from that moment on); until then, its jobs a day and monthly tokens
    capped at UNVERIFIED_JOBS_PER_DAY and UNVERIFIED_MONTHLY_TOKENS."""
    if email_verified:
        return plan
    return replace(
        plan,
        jobs_per_day=min(plan.jobs_per_day, UNVERIFIED_JOBS_PER_DAY),
        monthly_tokens=min(plan.monthly_tokens, UNVERIFIED_MONTHLY_TOKENS),
    )


def queue_for(plan: Plan, tool_queue: str) -> str:
    """The queue a job of this plan goes to: paid AI work skips ahead."""
    return f"{tool_queue}_priority" if plan.priority and tool_queue == "ai" else tool_queue


def allows_tool(plan: Plan, tool: str) -> bool:
    definition = get_tool(tool)
    return definition is not None and plan.name in definition.plans


def tools_for(plan: Plan) -> list[str]:
    return [tool.name for tool in all_tools() if plan.name in tool.plans]


def allows_model(plan: Plan, model: str, settings: Settings) -> bool:
    """Whether the plan may use the model: the catalogue's `plans` for it (every plan when
    it lists none). The configured default may be a self-hosted model the catalogue
    leaves out; the operator chose it for everyone."""
    listed = catalogue.get_catalogue(settings).model(model)
    return listed.allows(plan.name) if listed is not None else model == settings.default_model


def models_for(plan: Plan, offered: list[str], settings: Settings) -> list[str]:
    return [model for model in offered if allows_model(plan, model, settings)]


def cheapest_plan_where(allowed: Callable[[Plan], bool]) -> Plan | None:
    """The cheapest plan for which `allowed(plan)` holds (to name in a 403)."""
    return next((PLANS[name] for name in ORDER if allowed(PLANS[name])), None)


def price_id(plan: Plan, settings: Settings) -> str:
    """The Stripe price a checkout for this plan sells; empty when it is not for sale."""
    return {"pro": settings.stripe_price_pro, "business": settings.stripe_price_business}.get(plan.name, "")


def plan_for_price(price: str | None, settings: Settings) -> Plan | None:
    """The plan a Stripe price id stands for; None for a price this deployment does not sell."""
    if not price:
        return None
    return next((plan for plan in PLANS.values() if price_id(plan, settings) == price), None)


def rank(plan: Plan) -> int:
    return ORDER.index(plan.name)
