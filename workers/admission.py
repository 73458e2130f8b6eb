"""Admission: which queued jobs go to the broker now.

A user has at most their plan's running limit of jobs in flight (sent or running);
the rest stay `queued` in Postgres and are sent, oldest first, as their own jobs
finish. One user's thousand jobs therefore occupy at most a few places in the
broker's queue, and every other user's jobs interleave with them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from db.repositories import jobs, users
from db.session import session_scope
from workers.plans import get_plan

logger = logging.getLogger(__name__)

Send = Callable[..., None]  # send(job_id, queue=...)


@dataclass
class Admitted:
    sent: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)  # the broker refused; back to waiting


def admit(user_id: uuid.UUID, send: Send) -> Admitted:
    """Send as many of the user's waiting jobs as their plan's running limit allows."""
    with session_scope() as session:
        plan = users.lock(session, user_id=user_id)  # one admission per user at a time
        if plan is None:
            return Admitted()
        free = get_plan(plan).running_limit - jobs.count_in_flight(session, user_id=user_id)
        claimed = jobs.claim_waiting(session, user_id=user_id, limit=free) if free > 0 else []
    admitted = Admitted()
    for job_id, queue in claimed:
        if admitted.failed:  # the broker is down: do not try the rest now
            admitted.failed.append(job_id)
            continue
        try:
            send(job_id, queue=queue)
            admitted.sent.append(job_id)
        except Exception:
            logger.warning("job_id=%s send failed; back to waiting", job_id, exc_info=True)
            admitted.failed.append(job_id)
    if admitted.failed:
        with session_scope() as session:
            jobs.unclaim(session, job_ids=admitted.failed)
    return admitted


def admit_all_waiting(send: Send) -> int:
    """Every user with waiting jobs, longest-waiting first (the beat's sweep)."""
    with session_scope() as session:
        user_ids = jobs.users_with_waiting(session)
    return sum(len(admit(user_id, send).sent) for user_id in user_ids)
