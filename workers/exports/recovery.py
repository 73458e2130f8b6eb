"""Exports whose message was lost (a broker restart): the beat re-sends them. A
duplicate message is harmless: a build starts with a compare-and-set."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from db.repositories import exports
from db.session import session_scope
from settings import Settings
from workers.exports.build import stale_after

logger = logging.getLogger(__name__)

RESEND_AFTER = 300  # seconds an export may sit queued before its message counts as lost


def resend_lost(settings: Settings, send: Callable[[uuid.UUID], None]) -> int:
    with session_scope() as session:
        ids = exports.ids_to_resend(session, quiet_for=RESEND_AFTER, stale_after=stale_after(settings))
    sent = 0
    for export_id in ids:
        try:
            send(export_id)
        except Exception:
            logger.warning("export_id=%s re-send failed", export_id, exc_info=True)
            break
        with session_scope() as session:
            exports.touch(session, export_id=export_id)
        sent += 1
    if sent:
        logger.info("re-sent %s exports", sent)
    return sent
