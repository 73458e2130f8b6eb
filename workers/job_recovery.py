"""Jobs that stopped moving, found by the beat: waiting jobs whose turn came, messages
lost with the broker, leases of dead workers, and jobs past their deadline."""

from __future__ import annotations

import logging
import uuid

from db.repositories import jobs
from db.session import session_scope
from settings import Settings
from workers import admission, metrics
from workers.admission import Send

logger = logging.getLogger(__name__)


def resend_queued(settings: Settings, send: Send) -> int:
    """Send waiting jobs whose owners have a free slot (their turn came while the
    broker was down, or a job finished without a worker to admit the next), and
    re-send jobs whose message was probably lost with a broker restart. A duplicate
    message is harmless: starting a job is a compare-and-set."""
    admitted = admission.admit_all_waiting(send)
    with session_scope() as session:
        lost = jobs.ids_lost_in_broker(session, sent_before=settings.requeue_stale_after)
    return admitted + _send_all(lost, send)


def reap_lapsed_leases(settings: Settings, send: Send) -> tuple[int, int]:
    """Running jobs whose worker died: re-queue them, or fail them `worker_lost`
    once they have used all their attempts. Returns (requeued, failed)."""
    requeued: list[uuid.UUID] = []
    failed = 0
    with session_scope() as session:
        for job_id, attempt in jobs.ids_with_lapsed_lease(session):
            if attempt >= settings.job_max_attempts:
                failed += jobs.fail_lost(session, job_id=job_id, max_attempts=settings.job_max_attempts)
            elif jobs.requeue_lost(session, job_id=job_id):
                requeued.append(job_id)
    metrics.jobs_reaped("requeued", len(requeued))
    metrics.jobs_reaped("worker_lost", failed)
    if requeued or failed:
        logger.warning("reaper: requeued=%s failed=%s", len(requeued), failed)
    _send_all(requeued, send)
    return len(requeued), failed


def expire_overdue() -> int:
    with session_scope() as session:
        count = jobs.expire_overdue(session)
    metrics.jobs_reaped("expired", count)
    if count:
        logger.info("expired %s jobs not started before their deadline", count)
    return count


def _send_all(ids: list[uuid.UUID], send: Send) -> int:
    sent = 0
    for job_id in ids:
        with session_scope() as session:
            job = jobs.get(session, job_id=job_id)
            if job is None or job.status != "queued":
                continue
            queue = job.queue
        try:
            send(job_id, queue=queue)
        except Exception:
            logger.warning("job_id=%s re-send failed", job_id, exc_info=True)
            break
        with session_scope() as session:
            jobs.mark_dispatched(session, job_id=job_id)
        sent += 1
    if sent:
        logger.info("re-sent %s queued jobs", sent)
    return sent
