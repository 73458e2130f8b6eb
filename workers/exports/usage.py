"""usage.json of the account export: the user's usage ledger, call by call, and its totals."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy.orm import Session

from db.repositories import user_data


def for_user(session: Session, *, user_id: uuid.UUID) -> dict[str, Any]:
    calls = user_data.usage_calls_of(session, user_id=user_id)
    months: dict[str, dict[str, int]] = defaultdict(
        lambda: {"input_tokens": 0, "output_tokens": 0, "cost_micros": 0}
    )
    for call in calls:
        if call.billed:
            month = months[call.created_at.strftime("%Y-%m")]
            month["input_tokens"] += call.input_tokens
            month["output_tokens"] += call.output_tokens
            month["cost_micros"] += call.cost_micros
    return {
        "billed_by_month": [{"month": month, **totals} for month, totals in sorted(months.items())],
        "calls": [
            {
                "job_id": str(call.job_id),
                "attempt": call.attempt,
                "tool": call.tool,
                "model": call.model,
                "lane": call.lane,
                "input_tokens": call.input_tokens,
                "output_tokens": call.output_tokens,
                "cost_micros": call.cost_micros,
                "billed": call.billed,
                "at": call.created_at.isoformat(),
            }
            for call in calls
        ],
    }
